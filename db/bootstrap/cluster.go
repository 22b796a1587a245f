package bootstrap

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

const (
	// managedConf is the file in the data directory that holds the settings
	// bootstrap manages. postgresql.conf includes it, and Ensure rewrites it
	// each time it starts the cluster.
	managedConf = "crmhub.conf"

	// logFile is the server log in the data directory (pg_ctl -l).
	logFile = "postgres.log"

	// maxSocketPath is the longest Unix socket path Linux accepts
	// (sizeof(sun_path) - 1).
	maxSocketPath = 107
)

// cluster is a private PostgreSQL cluster: its binaries, its data directory
// and the OS user that owns it.
type cluster struct {
	cfg     Config
	log     *slog.Logger
	bin     binaries
	dataDir string  // absolute
	user    *osUser // nil: the current user
}

// ensurePrivate creates, starts or reuses the private cluster for cfg and
// returns a URL to cfg.Database in it.
func ensurePrivate(ctx context.Context, log *slog.Logger, cfg Config) (*Result, error) {
	abs, err := filepath.Abs(cfg.DataDir)
	if err != nil {
		return nil, fmt.Errorf("bootstrap: error resolving data directory %s: %w", cfg.DataDir, err)
	}
	unlock, err := lockFile(ctx, log, abs+".lock")
	if err != nil {
		return nil, err
	}
	defer unlock()

	c, err := newCluster(ctx, log, cfg, abs)
	if err != nil {
		return nil, err
	}
	started, port, err := c.ensureRunning(ctx)
	if err != nil {
		return nil, err
	}

	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	if err := waitReady(ctx, log, serverURL(addr, "postgres"), cfg.StartTimeout); err != nil {
		return nil, fmt.Errorf("bootstrap: the private PostgreSQL at %s (data directory %s) does not accept connections: %w; see %s",
			addr, c.dataDir, err, filepath.Join(c.dataDir, logFile))
	}
	if err := ensureDatabase(ctx, serverURL(addr, "postgres"), cfg.Database); err != nil {
		return nil, fmt.Errorf("bootstrap: error creating database %q in the private PostgreSQL at %s: %w", cfg.Database, addr, err)
	}
	u := serverURL(addr, cfg.Database)
	log.Info("database: using the private PostgreSQL", "url", u, "data_dir", c.dataDir, "started", started)
	return &Result{URL: u, Source: SourcePrivate, DataDir: c.dataDir, Started: started, Stop: c.stop}, nil
}

// newCluster finds the binaries (installing them if allowed), the OS user and
// the data directory, and prepares the directory so that the cluster's user
// owns it.
func newCluster(ctx context.Context, log *slog.Logger, cfg Config, abs string) (*cluster, error) {
	root := os.Geteuid() == 0
	bin, err := findBinaries(ctx, cfg, 0)
	if errors.Is(err, ErrNoBinaries) {
		switch {
		case !root:
			return nil, fmt.Errorf("%w: %s, or run as root to let crmhub install Debian's postgresql package", err, installHint)
		case cfg.NoInstall:
			return nil, fmt.Errorf("%w, and installing is disabled: %s", err, installHint)
		}
		if err := installPostgres(ctx, log, cfg); err != nil {
			return nil, err
		}
		bin, err = findBinaries(ctx, cfg, 0)
	}
	if err != nil {
		return nil, err
	}

	c := &cluster{cfg: cfg, log: log, bin: bin, dataDir: abs}
	if root {
		if c.user, err = lookupOSUser(OSUser); err != nil {
			return nil, fmt.Errorf("bootstrap: initdb and postgres refuse to run as root, and there is no %q OS user to run them as (%w): "+
				"create it with `useradd --system --create-home --home-dir /var/lib/postgresql --shell /bin/bash %s`, or run crmhub as a normal user",
				OSUser, err, OSUser)
		}
		if c.dataDir, err = c.reachableDataDir(abs); err != nil {
			return nil, err
		}
	}

	// A cluster runs only under the major version that created it.
	if v := c.version(); v != 0 && v != bin.major {
		if c.bin, err = findBinaries(ctx, cfg, v); err != nil {
			return nil, fmt.Errorf("%w (data directory %s)", err, c.dataDir)
		}
	}
	if err := c.prepareDir(); err != nil {
		return nil, err
	}
	log.Debug("database: private cluster", "data_dir", c.dataDir, "bin_dir", c.bin.dir, "version", c.bin.major)
	return c, nil
}

// lookupOSUser returns the OS user called name.
func lookupOSUser(name string) (*osUser, error) {
	u, err := user.Lookup(name)
	if err != nil {
		return nil, err
	}
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("unexpected uid %q: %w", u.Uid, err)
	}
	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("unexpected gid %q: %w", u.Gid, err)
	}
	return &osUser{name: u.Username, uid: uint32(uid), gid: uint32(gid), home: u.HomeDir}, nil
}

// reachableDataDir returns abs if the cluster's user can reach it, and
// otherwise a directory derived from abs under that user's home directory.
// Bootstrap does not loosen permissions on directories it did not create,
// such as a 0700 /root above a checkout.
func (c *cluster) reachableDataDir(abs string) (string, error) {
	blocked := c.blockedAncestor(abs)
	if blocked == "" {
		return abs, nil
	}
	sum := sha256.Sum256([]byte(abs))
	alt := filepath.Join(c.user.home, "crmhub", filepath.Base(abs)+"-"+hex.EncodeToString(sum[:6]))
	if b := c.blockedAncestor(alt); b != "" || c.user.home == "" {
		return "", fmt.Errorf("bootstrap: the %s user cannot enter %s (on the way to the data directory %s), nor %s on the way to %s: "+
			"set the data directory to a path the %s user can reach, or `chmod o+x` the directories on the way",
			c.user.name, blocked, abs, b, alt, c.user.name)
	}
	c.log.Info("database: the postgres user cannot enter a directory above the data directory, so the private cluster lives elsewhere",
		"blocked", blocked, "data_dir", abs, "using", alt)
	return alt, nil
}

// blockedAncestor returns the first existing directory above path that the
// cluster's user cannot enter, or "" if there is none. Directories that do not
// exist yet will be created enterable.
func (c *cluster) blockedAncestor(path string) string {
	groups := []uint32{c.user.gid}
	if u, err := user.LookupId(strconv.FormatUint(uint64(c.user.uid), 10)); err == nil {
		if ids, err := u.GroupIds(); err == nil {
			for _, id := range ids {
				if g, err := strconv.ParseUint(id, 10, 32); err == nil {
					groups = append(groups, uint32(g))
				}
			}
		}
	}
	var dirs []string
	for dir := filepath.Dir(path); ; dir = filepath.Dir(dir) {
		dirs = append(dirs, dir)
		if dir == filepath.Dir(dir) {
			break
		}
	}
	slices.Reverse(dirs)
	for _, dir := range dirs {
		fi, err := os.Stat(dir)
		if errors.Is(err, fs.ErrNotExist) {
			return ""
		}
		if err != nil {
			return dir
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		if !ok {
			return dir
		}
		perm := fi.Mode().Perm()
		var canEnter bool
		switch {
		case st.Uid == c.user.uid:
			canEnter = perm&0o100 != 0
		case slices.Contains(groups, st.Gid):
			canEnter = perm&0o010 != 0
		default:
			canEnter = perm&0o001 != 0
		}
		if !canEnter {
			return dir
		}
	}
	return ""
}

// version returns the major version of the cluster in the data directory, or
// 0 if it holds none.
func (c *cluster) version() int {
	b, err := os.ReadFile(filepath.Join(c.dataDir, "PG_VERSION"))
	if err != nil {
		return 0
	}
	v, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return v
}

// prepareDir creates the data directory and the directories above it, and
// makes the data directory the cluster user's with mode 0700, as postgres
// requires.
func (c *cluster) prepareDir() error {
	if err := mkdirEnterable(filepath.Dir(c.dataDir)); err != nil {
		return err
	}
	if err := os.Mkdir(c.dataDir, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("bootstrap: error creating data directory %s: %w", c.dataDir, err)
	}
	fi, err := os.Stat(c.dataDir)
	if err != nil {
		return fmt.Errorf("bootstrap: error reading data directory %s: %w", c.dataDir, err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("bootstrap: data directory %s is not a directory: remove it or set another data directory", c.dataDir)
	}
	uid := uint32(os.Geteuid())
	if c.user != nil {
		uid = c.user.uid
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && st.Uid != uid {
		if c.version() != 0 || c.user == nil {
			return fmt.Errorf("bootstrap: data directory %s belongs to uid %d, but the cluster runs as uid %d: "+
				"run as its owner, `chown -R` it, or remove it to start over (its data is lost)", c.dataDir, st.Uid, uid)
		}
		if err := os.Chown(c.dataDir, int(c.user.uid), int(c.user.gid)); err != nil {
			return fmt.Errorf("bootstrap: error giving data directory %s to the %s user: %w", c.dataDir, c.user.name, err)
		}
	}
	if fi.Mode().Perm() != 0o700 {
		if err := os.Chmod(c.dataDir, 0o700); err != nil {
			return fmt.Errorf("bootstrap: error setting data directory %s to mode 0700: %w", c.dataDir, err)
		}
	}
	return nil
}

// mkdirEnterable creates dir and its missing parents with mode 0755 whatever
// the umask, so that the cluster's user can pass through them.
func mkdirEnterable(dir string) error {
	if _, err := os.Stat(dir); err == nil {
		return nil
	}
	if err := mkdirEnterable(filepath.Dir(dir)); err != nil {
		return err
	}
	if err := os.Mkdir(dir, 0o755); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return nil
		}
		return fmt.Errorf("bootstrap: error creating directory %s: %w", dir, err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		return fmt.Errorf("bootstrap: error setting directory %s to mode 0755: %w", dir, err)
	}
	return nil
}

// ensureRunning initializes the cluster if needed and starts it if it is not
// running. It returns whether it started it and the port it listens on.
func (c *cluster) ensureRunning(ctx context.Context) (started bool, port int, err error) {
	if c.version() == 0 {
		if err := c.initdb(ctx); err != nil {
			return false, 0, err
		}
	} else if running, err := c.running(ctx); err != nil {
		return false, 0, err
	} else if running {
		port, err := c.runningPort()
		if err != nil {
			return false, 0, err
		}
		if c.cfg.Port != 0 && c.cfg.Port != port {
			c.log.Warn("database: the private cluster is already running on another port than the configured one; using it as is (stop it to change the port)",
				"port", port, "configured", c.cfg.Port)
		}
		return false, port, nil
	}

	// Try the configured or remembered port, then, if it turns out to be
	// taken and the user did not ask for it, kernel-chosen free ports.
	port = c.cfg.Port
	if port == 0 {
		port = c.rememberedPort()
		if port != 0 && !portFree(port) {
			port = 0
		}
	}
	for attempt := 1; ; attempt++ {
		if port == 0 {
			if port, err = freePort(); err != nil {
				return false, 0, err
			}
		}
		err = c.start(ctx, port)
		if err == nil {
			return true, port, nil
		}
		if c.cfg.Port != 0 || attempt == 3 || !strings.Contains(err.Error(), "could not bind") && !strings.Contains(err.Error(), "already in use") {
			return false, 0, err
		}
		c.log.Info("database: port taken while starting; trying another", "port", port)
		port = 0
	}
}

// initdb creates the cluster: superuser postgres, trust authentication (it
// only listens on 127.0.0.1 and its own socket directory), UTF-8.
func (c *cluster) initdb(ctx context.Context) error {
	entries, err := os.ReadDir(c.dataDir)
	if err != nil {
		return fmt.Errorf("bootstrap: error reading data directory %s: %w", c.dataDir, err)
	}
	if len(entries) > 0 {
		return fmt.Errorf("bootstrap: data directory %s is not empty but holds no PostgreSQL cluster (no PG_VERSION): "+
			"remove it, or set the data directory to an empty or missing directory", c.dataDir)
	}
	c.log.Info("database: creating a private PostgreSQL cluster (initdb)", "data_dir", c.dataDir, "version", c.bin.major, "as", c.userName())

	args := []string{"-D", c.dataDir, "-U", Superuser, "--auth=trust", "--encoding=UTF8"}
	if c.cfg.Fast {
		args = append(args, "--no-sync")
	}
	// C.UTF-8 matches what Debian's own clusters use; fall back to plain C on
	// systems that lack it. initdb empties the directory when it fails.
	err = c.pg(ctx, "initdb", append(args, "--locale=C.UTF-8")...).run()
	if err != nil && strings.Contains(err.Error(), "locale") {
		err = c.pg(ctx, "initdb", append(args, "--locale=C")...).run()
	}
	if err != nil {
		return fmt.Errorf("bootstrap: error creating the private cluster: %w", err)
	}

	f, err := os.OpenFile(filepath.Join(c.dataDir, "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("bootstrap: error opening postgresql.conf: %w", err)
	}
	_, err = fmt.Fprintf(f, "\n# Added by crmhub's database bootstrap (db/bootstrap), which rewrites %s each time it starts the cluster.\ninclude_if_exists = '%s'\n",
		managedConf, managedConf)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("bootstrap: error writing postgresql.conf: %w", err)
	}
	return nil
}

// running reports whether the cluster's server is running, according to
// pg_ctl status, which also sees through a stale postmaster.pid.
func (c *cluster) running(ctx context.Context) (bool, error) {
	cmd := c.pg(ctx, "pg_ctl", "status", "-D", c.dataDir)
	err := cmd.cmd.Run()
	var exitErr *exec.ExitError
	switch {
	case err == nil:
		return true, nil
	case errors.As(err, &exitErr) && exitErr.ExitCode() == 3:
		return false, nil
	default:
		return false, fmt.Errorf("bootstrap: error checking whether the private cluster in %s runs: %s: %w%s",
			c.dataDir, strings.Join(cmd.cmd.Args, " "), err, quote(cmd.out.String()))
	}
}

// runningPort reads the port of the running server from postmaster.pid, whose
// fourth line is the port.
func (c *cluster) runningPort() (int, error) {
	path := filepath.Join(c.dataDir, "postmaster.pid")
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, fmt.Errorf("bootstrap: error reading the running cluster's port: %w", err)
	}
	lines := strings.Split(string(b), "\n")
	if len(lines) < 4 {
		return 0, fmt.Errorf("bootstrap: %s is too short to hold the port", path)
	}
	port, err := strconv.Atoi(strings.TrimSpace(lines[3]))
	if err != nil {
		return 0, fmt.Errorf("bootstrap: error reading the port from %s: %w", path, err)
	}
	return port, nil
}

// rememberedPort returns the port in the managed configuration file, the one
// the cluster used last time, or 0.
func (c *cluster) rememberedPort() int {
	f, err := os.Open(filepath.Join(c.dataDir, managedConf))
	if err != nil {
		return 0
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		k, v, ok := strings.Cut(s.Text(), "=")
		if ok && strings.TrimSpace(k) == "port" {
			port, _ := strconv.Atoi(strings.TrimSpace(v))
			return port
		}
	}
	return 0
}

// start writes the managed settings and starts the server with pg_ctl,
// waiting until it is ready.
func (c *cluster) start(ctx context.Context, port int) error {
	socketDir := c.dataDir
	if len(socketDir)+len("/.s.PGSQL.65535") > maxSocketPath {
		// A socket path this long cannot be created; TCP is all we need.
		c.log.Info("database: data directory path too long for a Unix socket; the private cluster listens on TCP only", "data_dir", c.dataDir)
		socketDir = ""
	}
	var conf strings.Builder
	fmt.Fprintf(&conf, "# Written by crmhub's database bootstrap (db/bootstrap) each time it starts this cluster; edits are lost.\n")
	fmt.Fprintf(&conf, "listen_addresses = '127.0.0.1'\n")
	fmt.Fprintf(&conf, "port = %d\n", port)
	fmt.Fprintf(&conf, "unix_socket_directories = '%s'\n", strings.ReplaceAll(socketDir, "'", "''"))
	fmt.Fprintf(&conf, "max_connections = 200\n")
	if c.cfg.Fast {
		fmt.Fprintf(&conf, "# Config.Fast: not crash-safe against an OS crash or power loss.\nfsync = off\nsynchronous_commit = off\nfull_page_writes = off\n")
	}
	path := filepath.Join(c.dataDir, managedConf)
	if err := os.WriteFile(path, []byte(conf.String()), 0o600); err != nil {
		return fmt.Errorf("bootstrap: error writing %s: %w", path, err)
	}
	if c.user != nil {
		if err := os.Chown(path, int(c.user.uid), int(c.user.gid)); err != nil {
			return fmt.Errorf("bootstrap: error giving %s to the %s user: %w", path, c.user.name, err)
		}
	}

	logPath := filepath.Join(c.dataDir, logFile)
	c.log.Info("database: starting the private PostgreSQL", "data_dir", c.dataDir, "port", port, "log", logPath)
	timeout := strconv.Itoa(max(1, int(c.cfg.StartTimeout.Round(time.Second)/time.Second)))
	if err := c.pg(ctx, "pg_ctl", "start", "-D", c.dataDir, "-l", logPath, "-w", "-t", timeout).run(); err != nil {
		return fmt.Errorf("bootstrap: error starting the private cluster on port %d: %w%s\n(server log: %s)", port, err, quote(tail(logPath)), logPath)
	}
	return nil
}

// stop stops the server if it runs. It is Result.Stop for a private cluster.
func (c *cluster) stop(ctx context.Context) error {
	running, err := c.running(ctx)
	if err != nil || !running {
		return err
	}
	c.log.Info("database: stopping the private PostgreSQL", "data_dir", c.dataDir)
	if err := c.pg(ctx, "pg_ctl", "stop", "-D", c.dataDir, "-m", "fast", "-w").run(); err != nil {
		return fmt.Errorf("bootstrap: error stopping the private cluster: %w", err)
	}
	return nil
}

// pg prepares one of the PostgreSQL programs, run as the cluster's user. The
// environment loses PG* variables so that a PGPORT or PGDATA meant for
// something else cannot redirect it.
func (c *cluster) pg(ctx context.Context, name string, args ...string) *cmd {
	cmd := command(ctx, c.cfg, c.user, c.bin.path(name), args...)
	if c.user == nil {
		cmd.cmd.Env = slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, "PG") })
	}
	return cmd
}

// userName names the user the cluster runs as, for logs.
func (c *cluster) userName() string {
	if c.user != nil {
		return c.user.name
	}
	if u, err := user.Current(); err == nil {
		return u.Username
	}
	return "uid " + strconv.Itoa(os.Geteuid())
}

// tail returns the last part of a log file, or "" if it cannot be read.
func tail(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	const keep = 4 << 10
	if len(b) > keep {
		b = b[len(b)-keep:]
	}
	return string(b)
}

// portFree reports whether a TCP port on 127.0.0.1 can be listened on.
func portFree(port int) bool {
	l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		return false
	}
	l.Close()
	return true
}

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("bootstrap: error finding a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// lockFile takes an exclusive flock on path, creating it, and waits for it as
// long as ctx allows. Another process holding it is creating or starting the
// same cluster.
func lockFile(ctx context.Context, log *slog.Logger, path string) (unlock func(), err error) {
	if err := mkdirEnterable(filepath.Dir(path)); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDONLY, 0o644)
	if err != nil {
		return nil, fmt.Errorf("bootstrap: error opening lock file %s: %w", path, err)
	}
	logged := false
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() { f.Close() }, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) && !errors.Is(err, syscall.EINTR) {
			f.Close()
			return nil, fmt.Errorf("bootstrap: error locking %s: %w", path, err)
		}
		if !logged {
			log.Info("database: waiting for another crmhub process that is setting up the same private cluster", "lock", path)
			logged = true
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("bootstrap: gave up waiting for lock %s: %w", path, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}
