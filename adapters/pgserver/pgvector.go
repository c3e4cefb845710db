package pgserver

import (
	"context"
	_ "embed"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// installPgvectorScript builds and installs pgvector on Debian; see the script's header.
//
//go:embed install-pgvector.sh
var installPgvectorScript string

const pgvectorDocs = "https://github.com/pgvector/pgvector#installation"

// ensurePgvector installs the pgvector extension files for the PostgreSQL in binDir when they are
// missing, using the embedded install script.
func ensurePgvector(ctx context.Context, binDir string, major int, log *slog.Logger) error {
	pgConfig := filepath.Join(binDir, "pg_config")
	control, err := vectorControlFile(ctx, pgConfig)
	if err != nil {
		return err
	}
	if _, err := os.Stat(control); err == nil {
		return nil
	}
	if _, err := exec.LookPath("apt-get"); err != nil {
		return fmt.Errorf("pgvector is not installed for PostgreSQL %d (%s is missing) and this is not a Debian-based system: "+
			"install pgvector yourself (%s)", major, control, pgvectorDocs)
	}
	if os.Geteuid() != 0 {
		if _, err := exec.LookPath("sudo"); err != nil {
			return fmt.Errorf("pgvector is not installed for PostgreSQL %d (%s is missing) and installing it needs root, "+
				"but there is no sudo: run Metachat once as root to build it, or install pgvector yourself (%s)",
				major, control, pgvectorDocs)
		}
	}
	log.Info("pgvector is missing; building it from Debian's source package (one time, may take a few minutes)",
		"pg_config", pgConfig)
	if err := runInstallScript(ctx, pgConfig, log); err != nil {
		return err
	}
	if _, err := os.Stat(control); err != nil {
		return fmt.Errorf("install pgvector: script succeeded but %s is still missing", control)
	}
	return nil
}

// runInstallScript runs the embedded install script for the PostgreSQL of pgConfig.
func runInstallScript(ctx context.Context, pgConfig string, log *slog.Logger) error {
	script, err := os.CreateTemp("", "install-pgvector-*.sh")
	if err != nil {
		return fmt.Errorf("install pgvector: %w", err)
	}
	defer os.Remove(script.Name())
	_, err = script.WriteString(installPgvectorScript)
	if cerr := script.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("install pgvector: %w", err)
	}
	out := newLogWriter(log.With("component", "install-pgvector"))
	cmd := exec.CommandContext(ctx, "bash", script.Name())
	cmd.Env = append(os.Environ(), "PG_CONFIG="+pgConfig)
	cmd.Stdout, cmd.Stderr = out, out
	err = cmd.Run()
	out.flush()
	if err != nil {
		return fmt.Errorf("install pgvector (%w): %s\ninstall it yourself (%s)", err, out.Tail(), pgvectorDocs)
	}
	return nil
}

// vectorControlFile returns where pgvector's control file lives for this PostgreSQL installation.
func vectorControlFile(ctx context.Context, pgConfig string) (string, error) {
	out, err := exec.CommandContext(ctx, pgConfig, "--sharedir").Output()
	if err != nil {
		return "", fmt.Errorf("locate PostgreSQL extension directory with %s: %w", pgConfig, err)
	}
	return filepath.Join(strings.TrimSpace(string(out)), "extension", "vector.control"), nil
}
