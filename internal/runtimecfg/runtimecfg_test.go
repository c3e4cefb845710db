package runtimecfg

import (
	"runtime/debug"
	"testing"
)

// TestApply: without GOGC the target becomes DefaultGCPercent; with GOGC it stays what the
// runtime took from it.
func TestApply(t *testing.T) {
	before := debug.SetGCPercent(100)
	t.Cleanup(func() { debug.SetGCPercent(before) })
	if got := Apply(func(string) string { return "" }); got != DefaultGCPercent {
		t.Errorf("Apply without GOGC = %d, want %d", got, DefaultGCPercent)
	}
	if now := debug.SetGCPercent(100); now != DefaultGCPercent {
		t.Errorf("target after Apply without GOGC = %d, want %d", now, DefaultGCPercent)
	}
	env := func(k string) string {
		if k == "GOGC" {
			return "100"
		}
		return ""
	}
	if got := Apply(env); got != 100 {
		t.Errorf("Apply with GOGC=100 = %d, want 100 (left as the runtime set it)", got)
	}
	if now := debug.SetGCPercent(100); now != 100 {
		t.Errorf("target after Apply with GOGC = %d, want 100", now)
	}
}
