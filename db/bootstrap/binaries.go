package bootstrap

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// debianBinGlob is where Debian and Ubuntu put each major version's server
// binaries; pg_config is often missing there because it ships with libpq-dev.
const debianBinGlob = "/usr/lib/postgresql/*/bin"

// installHint tells a user without PostgreSQL what to do.
const installHint = "install the PostgreSQL server (Debian/Ubuntu: `sudo apt-get install -y postgresql`; " +
	"Fedora: `sudo dnf install -y postgresql-server`; macOS: `brew install postgresql`), " +
	"or set DATABASE_URL to a PostgreSQL you can use"

// binaries is a directory holding the server programs a private cluster needs.
type binaries struct {
	dir   string
	major int // major version, 15 for 15.4
}

func (b binaries) path(name string) string { return filepath.Join(b.dir, name) }

// findBinaries returns the PostgreSQL server binaries to use: cfg.BinDir if
// set, else `pg_config --bindir`, else the highest Debian version directory.
// When the data directory already holds a cluster of major version want
// (non-zero), a Debian directory for that version is preferred, because a
// cluster only runs under the major version that created it.
func findBinaries(ctx context.Context, cfg Config, want int) (binaries, error) {
	if cfg.BinDir != "" {
		b, err := checkBinDir(ctx, cfg.BinDir)
		if err != nil {
			return binaries{}, fmt.Errorf("bootstrap: BinDir %s: %w", cfg.BinDir, err)
		}
		return b, nil
	}

	var candidates []string
	if want > 0 {
		candidates = append(candidates, fmt.Sprintf("/usr/lib/postgresql/%d/bin", want))
	}
	if out, err := exec.CommandContext(ctx, "pg_config", "--bindir").Output(); err == nil {
		candidates = append(candidates, strings.TrimSpace(string(out)))
	}
	candidates = append(candidates, debianBinDirs()...)

	var found []binaries
	for _, dir := range candidates {
		b, err := checkBinDir(ctx, dir)
		if err != nil {
			continue
		}
		if want == 0 || b.major == want {
			return b, nil
		}
		found = append(found, b)
	}
	if len(found) > 0 {
		return binaries{}, fmt.Errorf("bootstrap: the data directory holds a PostgreSQL %d cluster but only PostgreSQL %d binaries were found (%s): "+
			"install PostgreSQL %d, or remove the data directory to start over (its data is lost)", want, found[0].major, found[0].dir, want)
	}
	return binaries{}, ErrNoBinaries
}

// ErrNoBinaries is returned (wrapped) by Ensure when it needs a private
// cluster, finds no PostgreSQL server binaries, and may not or cannot install
// them.
var ErrNoBinaries = errors.New("bootstrap: no PostgreSQL server binaries (initdb, pg_ctl, postgres) found via `pg_config --bindir` or in " + debianBinGlob)

// debianBinDirs returns the Debian version directories, highest version first.
func debianBinDirs() []string {
	dirs, _ := filepath.Glob(debianBinGlob)
	version := func(dir string) int {
		v, _ := strconv.Atoi(filepath.Base(filepath.Dir(dir)))
		return v
	}
	slices.SortFunc(dirs, func(a, b string) int { return version(b) - version(a) })
	return dirs
}

// checkBinDir checks that dir holds initdb, pg_ctl and postgres, and reads the
// major version from `postgres --version`.
func checkBinDir(ctx context.Context, dir string) (binaries, error) {
	for _, name := range []string{"initdb", "pg_ctl", "postgres"} {
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			return binaries{}, fmt.Errorf("no %s: %w", name, err)
		}
	}
	out, err := exec.CommandContext(ctx, filepath.Join(dir, "postgres"), "--version").Output()
	if err != nil {
		return binaries{}, fmt.Errorf("error running postgres --version: %w", err)
	}
	// The output looks like "postgres (PostgreSQL) 15.4 (Debian 15.4-1)".
	_, rest, _ := strings.Cut(string(out), "(PostgreSQL) ")
	digits := strings.FieldsFunc(rest, func(r rune) bool { return r < '0' || r > '9' })
	major := 0
	if len(digits) > 0 {
		major, _ = strconv.Atoi(digits[0])
	}
	if major == 0 {
		return binaries{}, fmt.Errorf("cannot read the version from %q", strings.TrimSpace(string(out)))
	}
	return binaries{dir: dir, major: major}, nil
}

// installPostgres installs Debian's postgresql package. It is only called as
// root.
func installPostgres(ctx context.Context, log *slog.Logger, cfg Config) error {
	if _, err := exec.LookPath("apt-get"); err != nil {
		return fmt.Errorf("%w, and this is not a Debian-like system (no apt-get) so crmhub cannot install it: %s", ErrNoBinaries, installHint)
	}
	log.Warn("database: PostgreSQL is not installed; installing Debian's postgresql package as root " +
		"(apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y postgresql); this takes a minute or two")
	env := append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
	for _, args := range [][]string{{"update"}, {"install", "-y", "postgresql"}} {
		c := command(ctx, cfg, nil, "apt-get", args...)
		c.cmd.Env = env
		if err := c.run(); err != nil {
			return fmt.Errorf("bootstrap: error installing PostgreSQL (apt-get %s): %w; install it yourself (%s)", strings.Join(args, " "), err, installHint)
		}
	}
	log.Info("database: installed Debian's postgresql package")
	return nil
}
