// Command metachat is the Metachat platform in one binary: `metachat serve` runs the API and the
// projectors (with an embedded NATS and a managed Postgres unless told otherwise), and the other
// subcommands operate it. This package only wires the other packages together.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/metachat/metachat/internal/runtimecfg"
)

func main() {
	runtimecfg.Apply(os.Getenv)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr, os.Getenv)
	stop()
	os.Exit(code)
}

// run executes the command line and returns the process exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) int {
	root, err := newRootCmd(getenv, stdout, stderr)
	if err != nil {
		fmt.Fprintln(stderr, "metachat: configuration:", err)
		return 2
	}
	root.SetArgs(args)
	if err := root.ExecuteContext(ctx); err != nil {
		fmt.Fprintln(stderr, "metachat:", err)
		return 1
	}
	return 0
}
