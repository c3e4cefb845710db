package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"text/tabwriter"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"golang.org/x/term"
)

func newProjectionsCmd(cfg *Config) *cobra.Command {
	cmd := &cobra.Command{Use: "projections", Short: "Inspect, rebuild and clean up read-model projections"}
	var dropOld bool
	rebuild := &cobra.Command{
		Use:   "rebuild NAME",
		Short: "Replay the stream into a new generation beside the live one, then switch reads to it",
		Args:  cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			return withApp(c.Context(), *cfg, c.ErrOrStderr(), func(ctx context.Context, a *app) error {
				return rebuildProjection(ctx, a, args[0], dropOld, c.OutOrStdout())
			})
		},
	}
	rebuild.Flags().BoolVar(&dropOld, "drop-old", false, "drop the replaced generation after the switch")
	cmd.AddCommand(
		&cobra.Command{
			Use:   "status",
			Short: "List projections with generation, checkpoint and lag",
			Args:  cobra.NoArgs,
			RunE: func(c *cobra.Command, _ []string) error {
				return withApp(c.Context(), *cfg, c.ErrOrStderr(), func(ctx context.Context, a *app) error {
					return printStatus(ctx, a, c.OutOrStdout())
				})
			},
		},
		rebuild,
		&cobra.Command{
			Use:   "drop-retired NAME",
			Short: "Drop the generations of a projection that a rebuild replaced",
			Args:  cobra.ExactArgs(1),
			RunE: func(c *cobra.Command, args []string) error {
				return withApp(c.Context(), *cfg, c.ErrOrStderr(), func(ctx context.Context, a *app) error {
					dropped, err := a.manager.DropRetired(ctx, args[0])
					if err == nil {
						fmt.Fprintf(c.OutOrStdout(), "dropped generations %v of %s\n", dropped, args[0])
					}
					return err
				})
			},
		},
	)
	return cmd
}

// withApp runs fn with the application opened against the servers of a running `metachat serve`
// (found through the data directory), the configured ones, or servers started for the command.
func withApp(ctx context.Context, cfg Config, logOut io.Writer, fn func(context.Context, *app) error) error {
	if cfg.LogLevel == "info" {
		cfg.LogLevel = "warn" // operator commands print their own output
	}
	logger := newLogger(cfg, logOut)
	in, err := startInfra(ctx, cfg, logger, logger, false)
	if err != nil {
		return err
	}
	defer in.close(context.WithoutCancel(ctx))
	a, err := openApp(ctx, cfg, logger, in, nil)
	if err != nil {
		return err
	}
	defer a.close()
	if err := a.manager.Ensure(ctx); err != nil {
		return err
	}
	return fn(ctx, a)
}

func printStatus(ctx context.Context, a *app, out io.Writer) error {
	st, err := a.manager.Status(ctx)
	if err != nil {
		return err
	}
	w := tabwriter.NewWriter(out, 2, 4, 2, ' ', 0)
	fmt.Fprintln(w, "PROJECTION\tGENERATION\tSTATE\tCHECKPOINT\tSTREAM\tLAG\tSTOPPED")
	for _, s := range st {
		stopped := "-"
		if s.Stopped {
			stopped = fmt.Sprintf("at seq %d: %s", s.StopSeq, s.Error)
		}
		fmt.Fprintf(w, "%s\t%d\t%s\t%d\t%d\t%d\t%s\n", s.Projection, s.Generation, s.State, s.Checkpoint, s.StreamLastSeq, s.Lag, stopped)
	}
	return w.Flush()
}

func rebuildProjection(ctx context.Context, a *app, name string, dropOld bool, out io.Writer) error {
	start := time.Now()
	var bar *progressbar.ProgressBar
	var lastLog time.Time
	progress := func(done, total uint64) {
		if f, ok := out.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
			if bar == nil {
				bar = progressbar.NewOptions64(int64(total),
					progressbar.OptionSetWriter(out),
					progressbar.OptionSetDescription("rebuild "+name),
					progressbar.OptionShowCount(),
					progressbar.OptionShowIts(),
					progressbar.OptionSetItsString("events"),
					progressbar.OptionSetPredictTime(true),
					progressbar.OptionThrottle(100*time.Millisecond),
				)
			}
			_ = bar.Set64(int64(done))
			return
		}
		if time.Since(lastLog) >= time.Second || done == total {
			lastLog = time.Now()
			fmt.Fprintf(out, "rebuild %s: %d/%d events\n", name, done, total)
		}
	}
	gen, err := a.manager.Rebuild(ctx, name, progress)
	if bar != nil {
		_ = bar.Finish()
		fmt.Fprintln(out)
	}
	if err != nil {
		return fmt.Errorf("rebuild %s: %w", name, err)
	}
	fmt.Fprintf(out, "%s: generation %d is active (rebuilt in %s)\n", name, gen, time.Since(start).Round(time.Millisecond))
	if dropOld {
		dropped, err := a.manager.DropRetired(ctx, name)
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "dropped generations %v\n", dropped)
	}
	return nil
}
