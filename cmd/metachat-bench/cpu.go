package main

import (
	"bytes"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// clockTicks is the unit of utime and stime in /proc/<pid>/stat (USER_HZ, 100 on Linux).
const clockTicks = 100

// cpuUse is CPU time spent: by this process (server, embedded NATS, projections and the bench's
// own clients alike) and by the Postgres backends serving the bench database.
type cpuUse struct {
	self     time.Duration
	postgres time.Duration
}

// cpuMeter reads CPU use, so that a scenario can say what one message costs in CPU time. Unlike
// throughput, CPU time per message hardly depends on what else the machine runs.
type cpuMeter struct {
	// database is the name of the bench database, whose backends are counted.
	database string
}

// newCPUMeter returns a meter of this process and of the backends of the database dbURL names.
func newCPUMeter(dbURL string) cpuMeter {
	u, err := url.Parse(dbURL)
	if err != nil {
		return cpuMeter{}
	}
	return cpuMeter{database: strings.TrimPrefix(u.Path, "/")}
}

// read returns the CPU time used so far. Postgres backends are found by their process title
// ("postgres: … <database> …"); a backend that exited between two reads is missed, which the
// bench's pools (connections kept open) make rare.
func (m cpuMeter) read() cpuUse {
	var u cpuUse
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err == nil {
		u.self = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	if m.database == "" {
		return u
	}
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	needle := []byte(" " + m.database + " ")
	for _, d := range dirs {
		title, err := os.ReadFile(filepath.Join(d, "cmdline"))
		if err != nil || !bytes.HasPrefix(title, []byte("postgres: ")) || !bytes.Contains(title, needle) {
			continue
		}
		u.postgres += procCPU(filepath.Join(d, "stat"))
	}
	return u
}

// procCPU returns utime + stime from a /proc/<pid>/stat file, or 0.
func procCPU(path string) time.Duration {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	// The command may hold spaces: fields are counted after its closing parenthesis.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0
	}
	return time.Duration(ut+st) * time.Second / clockTicks
}

// perMessage formats the CPU used between two reads, per message, in microseconds.
func perMessage(from, to cpuUse, n int) (self, postgres string) {
	if n == 0 {
		return "-", "-"
	}
	us := func(d time.Duration) string { return fmt.Sprintf("%.0f µs", float64(d.Microseconds())/float64(n)) }
	return us(to.self - from.self), us(to.postgres - from.postgres)
}
