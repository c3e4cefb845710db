package pgserver

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// account is the identity initdb and postgres run as.
type account struct {
	name string
	home string
	// cred is nil when the child processes run as the current user.
	cred *syscall.Credential
}

// resolveAccount picks the user to run postgres as: the current user, or name when running as root.
func resolveAccount(name string) (account, error) {
	if os.Geteuid() != 0 {
		a := account{name: strconv.Itoa(os.Geteuid())}
		if u, err := user.Current(); err == nil {
			a.name, a.home = u.Username, u.HomeDir
		}
		return a, nil
	}
	u, err := user.Lookup(name)
	if err != nil {
		return account{}, fmt.Errorf("look up user %q to run postgres as (PostgreSQL refuses to run as root): %w; "+
			"create it (useradd --system --user-group %s) or configure another unprivileged user", name, err, name)
	}
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err := errors.Join(err1, err2); err != nil {
		return account{}, fmt.Errorf("user %q: %w", name, err)
	}
	if uid == 0 {
		return account{}, fmt.Errorf("user %q is root; postgres needs an unprivileged user", name)
	}
	cred := &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	if ids, err := u.GroupIds(); err == nil {
		for _, id := range ids {
			if g, err := strconv.ParseUint(id, 10, 32); err == nil {
				cred.Groups = append(cred.Groups, uint32(g))
			}
		}
	}
	return account{name: u.Username, home: u.HomeDir, cred: cred}, nil
}

// canSearch reports whether the account may traverse the directory described by fi.
func (a account) canSearch(fi fs.FileInfo) bool {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if a.cred == nil || !ok {
		return true
	}
	perm := fi.Mode().Perm()
	switch {
	case st.Uid == a.cred.Uid:
		return perm&0o100 != 0
	case st.Gid == a.cred.Gid || slices.Contains(a.cred.Groups, st.Gid):
		return perm&0o010 != 0
	default:
		return perm&0o001 != 0
	}
}

// makeDataDir creates dir and lets group and others traverse the ancestors it had to create, so
// the postgres user can reach dir even under a restrictive umask.
func makeDataDir(dir string) error {
	var missing []string
	for d := filepath.Dir(dir); ; d = filepath.Dir(d) {
		if _, err := os.Lstat(d); err == nil {
			break
		} else if !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("create data dir: %w", err)
		}
		missing = append(missing, d)
		if filepath.Dir(d) == d {
			break
		}
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create data dir: %w", err)
	}
	for _, d := range missing {
		fi, err := os.Stat(d)
		if err != nil {
			return fmt.Errorf("create data dir: %w", err)
		}
		if err := os.Chmod(d, fi.Mode().Perm()|0o011); err != nil {
			return fmt.Errorf("create data dir: %w", err)
		}
	}
	return nil
}

// checkReachable fails with advice when the account cannot traverse to dir.
func checkReachable(dir string, a account) error {
	real, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return fmt.Errorf("resolve data dir: %w", err)
	}
	for p := filepath.Dir(real); ; p = filepath.Dir(p) {
		fi, err := os.Stat(p)
		if err != nil {
			return fmt.Errorf("check data dir access: %w", err)
		}
		if !a.canSearch(fi) {
			return fmt.Errorf("postgres runs as user %q because Metachat runs as root, but that user cannot reach %s: "+
				"directory %s (mode %04o) is not searchable by it; allow traversal with `chmod o+x %s`, "+
				"or use a data directory outside it (e.g. under /var/lib/metachat)", a.name, dir, p, fi.Mode().Perm(), p)
		}
		if filepath.Dir(p) == p {
			return nil
		}
	}
}

// chownTree hands dir and everything below it to the account.
func chownTree(dir string, a account) error {
	if a.cred == nil {
		return nil
	}
	uid, gid := int(a.cred.Uid), int(a.cred.Gid)
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) == uid && int(st.Gid) == gid {
			return nil
		}
		return os.Lchown(path, uid, gid)
	})
	if err != nil {
		return fmt.Errorf("give %s to user %s: %w", dir, a.name, err)
	}
	return nil
}

// clearStaleLock handles a postmaster.pid left behind by a previous run. Postgres itself ignores
// a lock file whose pid is dead, but refuses to start when the pid was reused by a live process
// of its user. The lock file is only removed when no postgres process still uses the data
// directory, which is what the lock protects against.
func clearStaleLock(ctx context.Context, pgdata string, log *slog.Logger) error {
	lockFile := filepath.Join(pgdata, "postmaster.pid")
	b, err := os.ReadFile(lockFile)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	} else if err != nil {
		return fmt.Errorf("read lock file: %w", err)
	}
	first, _, _ := strings.Cut(string(b), "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(first))
	if err != nil || pid <= 0 {
		return nil //nolint:nilerr // postgres reports malformed lock files itself
	}
	deadline := time.Now().Add(10 * time.Second)
	for logged := false; ; logged = true {
		procs := postgresProcessesIn(pgdata)
		if slices.Contains(procs, pid) {
			return fmt.Errorf("PostgreSQL is already running on %s (pid %d); is another Metachat running? stop it first", pgdata, pid)
		}
		if len(procs) == 0 {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("postgres processes %v left over from a previous run still use %s; stop them and retry", procs, pgdata)
		}
		if !logged {
			log.Info("waiting for postgres processes of a previous run to exit", "pids", procs)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for leftover postgres processes: %w", ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
	if err := syscall.Kill(pid, 0); err == nil || errors.Is(err, syscall.EPERM) {
		log.Warn("removing stale postmaster.pid whose pid was reused by another process", "pid", pid)
		if err := os.Remove(lockFile); err != nil {
			return fmt.Errorf("remove stale lock file: %w", err)
		}
	}
	return nil
}

// postgresProcessesIn lists the postgres processes whose working directory is pgdata: the
// postmaster and its children all chdir into the data directory.
func postgresProcessesIn(pgdata string) []int {
	want, err := filepath.EvalSymlinks(pgdata)
	if err != nil {
		return nil
	}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		exe, err := os.Readlink(filepath.Join("/proc", e.Name(), "exe"))
		if err != nil || (filepath.Base(exe) != "postgres" && filepath.Base(exe) != "postmaster") {
			continue
		}
		if cwd, err := os.Readlink(filepath.Join("/proc", e.Name(), "cwd")); err == nil && cwd == want {
			pids = append(pids, pid)
		}
	}
	return pids
}
