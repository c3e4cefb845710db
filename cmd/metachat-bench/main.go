// Command metachat-bench measures Metachat's speed and memory figures and prints them as one table,
// each beside its baseline where one exists (`make bench`). Like cmd/metachat it only wires packages
// together; it starts its own embedded NATS servers and uses the Postgres given by
// METACHAT_TEST_DATABASE_URL (default: the machine's server on 127.0.0.1:5432), creating and dropping
// its own database.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"time"

	"github.com/metachat/metachat/internal/runtimecfg"
)

func main() {
	runtimecfg.Apply(os.Getenv) // the garbage collector runs as in metachat serve
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "metachat-bench:", err)
		stop()
		os.Exit(1)
	}
}

// options are the bench's knobs.
type options struct {
	appends      int // events per append scenario
	replayEvents int // events replayed into a projection
	payloadBytes int // approximate stored event size
	only         string
	// knowledgeChunks are the chunk counts the knowledge section measures search at.
	knowledgeChunks []int
}

func run(ctx context.Context, args []string, out io.Writer) error {
	var o options
	fs := flag.NewFlagSet("metachat-bench", flag.ContinueOnError)
	fs.IntVar(&o.appends, "appends", 20000, "events per append scenario")
	fs.IntVar(&o.replayEvents, "replay-events", 50000, "events replayed into a projection")
	fs.IntVar(&o.payloadBytes, "payload", 400, "approximate stored event size in bytes")
	fs.StringVar(&o.only, "only", "", "run only the sections whose name contains this")
	chunks := fs.String("knowledge-chunks", "10000,100000", "chunk counts the knowledge section measures search at")
	if err := fs.Parse(args); err != nil {
		return err
	}
	for _, c := range strings.Split(*chunks, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(c))
		if err != nil || n <= 0 {
			return fmt.Errorf("-knowledge-chunks: %q is not a positive number", c)
		}
		o.knowledgeChunks = append(o.knowledgeChunks, n)
	}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	t := newTable(out)
	start := time.Now()
	sections := []struct {
		name string
		fn   func(context.Context, *table, options, *slog.Logger) error
	}{
		{"append", benchAppend},
		{"replay", benchReplay},
		{"messages", benchMessages},
		{"sockets", benchSockets},
		{"load", benchLoad},
		{"knowledge", benchKnowledge},
	}
	for _, s := range sections {
		if o.only != "" && !contains(s.name, o.only) {
			continue
		}
		if err := s.fn(ctx, t, o, logger); err != nil {
			return fmt.Errorf("%s: %w", s.name, err)
		}
	}
	t.flush()
	fmt.Fprintf(out, "\n(total %s)\n", time.Since(start).Round(time.Second))
	return nil
}

func contains(s, sub string) bool {
	return len(sub) == 0 || (len(s) >= len(sub) && (s == sub || indexOf(s, sub) >= 0))
}

func indexOf(s, sub string) int {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return i
		}
	}
	return -1
}
