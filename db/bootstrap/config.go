package bootstrap

import (
	"cmp"
	"errors"
	"fmt"
	"io"
	"net"
	"time"
)

const (
	// DataDirDefault is where the private cluster lives when Config.DataDir is
	// empty, relative to the working directory (the repository root under make).
	DataDirDefault = ".data/postgres"

	// DatabaseDefault is the database Ensure creates and returns a URL to.
	DatabaseDefault = "crmhub"

	// ProbeAddrDefault is the address of the PostgreSQL that Ensure uses when
	// DATABASE_URL is not set and it answers.
	ProbeAddrDefault = "127.0.0.1:5432"

	// ProbeTimeoutDefault bounds the attempt to reach the PostgreSQL at
	// ProbeAddr.
	ProbeTimeoutDefault = 2 * time.Second

	// StartTimeoutDefault bounds starting the private cluster and waiting until
	// it accepts connections.
	StartTimeoutDefault = 60 * time.Second

	// Superuser is the role Ensure connects as on the local server and the
	// superuser it creates in a private cluster.
	Superuser = "postgres"

	// OSUser is the operating-system user that runs initdb and postgres when
	// the process is root.
	OSUser = "postgres"
)

// Config configures Ensure. The zero value is ready to use: every field has a
// default that WithDefaults fills in.
type Config struct {
	// DatabaseURL is a PostgreSQL URL to use as is, normally the DATABASE_URL
	// environment variable. When set, nothing is probed, created or started;
	// Ensure only checks that it answers. Defaults to empty.
	DatabaseURL string

	// Database is the database Ensure creates (if missing) on the local or
	// private server and returns a URL to. Defaults to DatabaseDefault.
	Database string

	// ProbeAddr is the host:port of a PostgreSQL that Ensure uses if it lets
	// the postgres role in without a password. Point it at an address that
	// does not answer (such as 127.0.0.1:1) to force the private cluster.
	// Defaults to ProbeAddrDefault.
	ProbeAddr string

	// ProbeTimeout bounds connecting to ProbeAddr. Defaults to
	// ProbeTimeoutDefault.
	ProbeTimeout time.Duration

	// DataDir is the data directory of the private cluster. It is created if
	// missing. Defaults to DataDirDefault.
	DataDir string

	// Port is the TCP port of the private cluster on 127.0.0.1. Zero means the
	// port the cluster used last time if it is still free, else a free port
	// chosen by the kernel. Defaults to 0.
	Port int

	// BinDir is the directory holding initdb, pg_ctl and postgres. Empty means
	// `pg_config --bindir`, else the highest /usr/lib/postgresql/<version>/bin.
	// Defaults to empty.
	BinDir string

	// NoInstall forbids installing Debian's postgresql package when no
	// PostgreSQL binaries are found and the process is root; Ensure then fails
	// with a message saying what to install. Defaults to false (install).
	NoInstall bool

	// Fast trades crash safety for speed: initdb skips fsync and the cluster
	// runs with fsync, synchronous_commit and full_page_writes off. A power
	// loss or OS crash (not a crash of PostgreSQL itself) can then corrupt the
	// cluster. The settings apply each time Ensure starts the cluster; a
	// running cluster keeps the ones it was started with. Meant for throwaway
	// test clusters. Defaults to false.
	Fast bool

	// StartTimeout bounds starting the private cluster and waiting until any
	// server (including DatabaseURL's) accepts connections. Defaults to
	// StartTimeoutDefault.
	StartTimeout time.Duration

	// Stdout receives the standard output of the commands Ensure runs
	// (apt-get, initdb, pg_ctl). The output is also kept and quoted in errors.
	// Defaults to io.Discard.
	Stdout io.Writer

	// Stderr receives the standard error of the commands Ensure runs.
	// Defaults to io.Discard.
	Stderr io.Writer
}

// WithDefaults returns a copy of the config with every unset field set to its
// default.
func (c Config) WithDefaults() Config {
	c.Database = cmp.Or(c.Database, DatabaseDefault)
	c.ProbeAddr = cmp.Or(c.ProbeAddr, ProbeAddrDefault)
	c.ProbeTimeout = cmp.Or(c.ProbeTimeout, ProbeTimeoutDefault)
	c.DataDir = cmp.Or(c.DataDir, DataDirDefault)
	c.StartTimeout = cmp.Or(c.StartTimeout, StartTimeoutDefault)
	c.Stdout = cmp.Or[io.Writer](c.Stdout, io.Discard)
	c.Stderr = cmp.Or[io.Writer](c.Stderr, io.Discard)
	return c
}

// validate reports the first setting that cannot work, saying how to fix it.
func (c Config) validate() error {
	if c.Port < 0 || c.Port > 65535 {
		return fmt.Errorf("bootstrap: port %d is out of range: set a port between 1 and 65535, or 0 to pick a free one", c.Port)
	}
	if len(c.Database) > 63 {
		return fmt.Errorf("bootstrap: database name %q is longer than PostgreSQL's 63-byte limit", c.Database)
	}
	if _, _, err := net.SplitHostPort(c.ProbeAddr); err != nil {
		return fmt.Errorf("bootstrap: probe address %q is not host:port: %w", c.ProbeAddr, err)
	}
	if c.ProbeTimeout < 0 || c.StartTimeout < 0 {
		return errors.New("bootstrap: timeouts must not be negative")
	}
	return nil
}
