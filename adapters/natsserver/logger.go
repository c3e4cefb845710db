package natsserver

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
)

// slogLogger implements the nats-server Logger interface on top of slog. It remembers the last
// fatal message so that Start can report why the server did not come up.
type slogLogger struct {
	log *slog.Logger

	mu    sync.Mutex
	fatal string
}

func (l *slogLogger) logf(level slog.Level, format string, v []any) {
	if l.log.Enabled(context.Background(), level) {
		l.log.Log(context.Background(), level, fmt.Sprintf(format, v...))
	}
}

// Noticef logs at slog.LevelInfo.
func (l *slogLogger) Noticef(format string, v ...any) { l.logf(slog.LevelInfo, format, v) }

// Warnf logs at slog.LevelWarn.
func (l *slogLogger) Warnf(format string, v ...any) { l.logf(slog.LevelWarn, format, v) }

// Errorf logs at slog.LevelError.
func (l *slogLogger) Errorf(format string, v ...any) { l.logf(slog.LevelError, format, v) }

// Debugf logs at slog.LevelDebug.
func (l *slogLogger) Debugf(format string, v ...any) { l.logf(slog.LevelDebug, format, v) }

// Tracef logs at LevelTrace.
func (l *slogLogger) Tracef(format string, v ...any) { l.logf(LevelTrace, format, v) }

// Fatalf logs at slog.LevelError and records the message. Unlike the nats-server default logger
// it does not exit the process: Start reports the failure instead.
func (l *slogLogger) Fatalf(format string, v ...any) {
	msg := fmt.Sprintf(format, v...)
	l.mu.Lock()
	l.fatal = msg
	l.mu.Unlock()
	l.log.Error(msg, "fatal", true)
}

// lastFatal returns the last fatal message, if any.
func (l *slogLogger) lastFatal() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.fatal
}
