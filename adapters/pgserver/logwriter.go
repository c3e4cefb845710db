package pgserver

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
)

// tailLines is how many output lines a logWriter keeps for error messages.
const tailLines = 20

// logWriter turns a child process's output into slog records, one per line, and remembers the
// last lines so that a failed start can say why.
type logWriter struct {
	log *slog.Logger

	mu    sync.Mutex
	buf   []byte
	tail  []string
	level slog.Level // level of the previous line, for DETAIL/HINT/continuation lines
}

func newLogWriter(log *slog.Logger) *logWriter {
	return &logWriter{log: log, level: slog.LevelInfo}
}

// Write implements io.Writer.
func (w *logWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, p...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			break
		}
		w.line(string(w.buf[:i]))
		w.buf = w.buf[i+1:]
	}
	return len(p), nil
}

// flush logs a final unterminated line.
func (w *logWriter) flush() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.buf) > 0 {
		w.line(string(w.buf))
		w.buf = nil
	}
}

// Tail returns the last lines written, joined by newlines.
func (w *logWriter) Tail() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return strings.Join(w.tail, "\n")
}

// contains reports whether any remembered line contains s.
func (w *logWriter) contains(s string) bool {
	return strings.Contains(w.Tail(), s)
}

func (w *logWriter) line(s string) {
	s = strings.TrimRight(s, "\r")
	if strings.TrimSpace(s) == "" {
		return
	}
	if len(w.tail) == tailLines {
		w.tail = append(w.tail[:0], w.tail[1:]...)
	}
	w.tail = append(w.tail, s)
	if sev, msg, ok := strings.Cut(s, ":  "); ok {
		if lvl, known := severityLevel(sev); known {
			w.level, s = lvl, msg
		}
	}
	w.log.Log(context.Background(), w.level, s)
}

// severityLevel maps a PostgreSQL message severity to a slog level.
func severityLevel(sev string) (slog.Level, bool) {
	switch sev {
	case "DEBUG1", "DEBUG2", "DEBUG3", "DEBUG4", "DEBUG5":
		return slog.LevelDebug, true
	case "LOG", "INFO", "NOTICE":
		return slog.LevelInfo, true
	case "WARNING":
		return slog.LevelWarn, true
	case "ERROR", "FATAL", "PANIC":
		return slog.LevelError, true
	}
	return 0, false
}
