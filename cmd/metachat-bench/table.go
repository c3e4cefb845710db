package main

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"
)

// table prints bench rows aligned.
type table struct {
	w       *tabwriter.Writer
	section string
}

func newTable(out io.Writer) *table {
	return &table{w: tabwriter.NewWriter(out, 2, 4, 2, ' ', 0)}
}

func (t *table) header(section string) {
	if t.section != "" {
		fmt.Fprintln(t.w)
	}
	t.section = section
	fmt.Fprintf(t.w, "== %s\n", section)
}

func (t *table) row(cols ...string) {
	fmt.Fprintln(t.w, strings.Join(cols, "\t"))
}

func (t *table) flush() { _ = t.w.Flush() }

// latencies collects durations and reports percentiles.
type latencies []time.Duration

func (l latencies) pct(p float64) time.Duration {
	if len(l) == 0 {
		return 0
	}
	s := append(latencies(nil), l...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	i := int(p / 100 * float64(len(s)-1))
	return s[i]
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d.Microseconds())/1000) }

func rate(n int, d time.Duration) float64 { return float64(n) / d.Seconds() }
