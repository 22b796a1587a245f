package bootstrap

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// osUser is the operating-system user that runs initdb, pg_ctl and postgres.
// A nil *osUser means the current user.
type osUser struct {
	name     string
	uid, gid uint32
	home     string
}

// cmd is a command whose output goes to the configured writers and is also
// kept, so that a failure can quote it.
type cmd struct {
	cmd *exec.Cmd
	out bytes.Buffer
}

// command prepares name with args, run as user when it is non-nil.
//
// It runs as user through the process credentials rather than runuser or su,
// so it needs no PAM session or shell. The command gets its own process group
// so that Ctrl-C in a terminal running `make run` does not interrupt pg_ctl
// half-way (pg_ctl itself puts the server in its own session), and it runs in
// "/" because the postgres user may not be able to enter our working
// directory.
func command(ctx context.Context, cfg Config, user *osUser, name string, args ...string) *cmd {
	c := &cmd{cmd: exec.CommandContext(ctx, name, args...)}
	c.cmd.Stdout = io.MultiWriter(cfg.Stdout, &c.out)
	c.cmd.Stderr = io.MultiWriter(cfg.Stderr, &c.out)
	c.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	// pg_ctl redirects the server's output to its log file, so nothing should
	// hold our pipes open after the command exits; this is a backstop.
	c.cmd.WaitDelay = 5 * time.Second
	if user != nil {
		c.cmd.SysProcAttr.Credential = &syscall.Credential{Uid: user.uid, Gid: user.gid}
		c.cmd.Dir = "/"
		c.cmd.Env = []string{
			"HOME=" + user.home,
			"USER=" + user.name,
			"LOGNAME=" + user.name,
			"PATH=" + os.Getenv("PATH"),
			"LANG=C.UTF-8",
		}
	}
	return c
}

// run runs the command and, if it fails, returns an error quoting the end of
// its output.
func (c *cmd) run() error {
	if err := c.cmd.Run(); err != nil {
		return fmt.Errorf("%s failed: %w%s", strings.Join(c.cmd.Args, " "), err, quote(c.out.String()))
	}
	return nil
}

// quote returns the last lines of a command's output, indented, for an error
// message.
func quote(out string) string {
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) == 1 && lines[0] == "" {
		return ""
	}
	if len(lines) > 15 {
		lines = lines[len(lines)-15:]
	}
	return "\n\t" + strings.Join(lines, "\n\t")
}
