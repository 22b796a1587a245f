// Package bootstrap finds or starts the PostgreSQL database that `crmhub dev`
// (make run) and the test helpers (make test) use, so that both work on a new
// machine with no set-up.
//
// Ensure tries, in order:
//
//  1. The DATABASE_URL the caller passes in Config.DatabaseURL, used as is.
//  2. A PostgreSQL on 127.0.0.1:5432 that lets the postgres user in without a
//     password (a developer's own server, or a CI service container).
//  3. A private cluster under Config.DataDir (default .data/postgres), created
//     with initdb and started with pg_ctl from the machine's PostgreSQL
//     binaries. When the binaries are missing and the process is root, Debian's
//     postgresql package is installed first.
//
// For 2 and 3 it then makes sure the database Config.Database (default
// "crmhub") exists and returns a URL to it.
//
// # The private cluster
//
// The cluster listens only on 127.0.0.1, trusts every local connection, and
// keeps its Unix socket inside its data directory, so it needs neither a
// password nor /var/run/postgresql. It keeps running after the process that
// started it exits: the next `make run` or `make test` finds it running and
// reuses it in well under a second, and several test binaries can share it.
// Result.Stop stops it on request; `make run` does not call it.
//
// initdb and postgres refuse to run as root, so when the process is root they
// run as the postgres OS user, and the data directory is owned by postgres with
// mode 0700. If the postgres user cannot reach Config.DataDir (for example a
// checkout under /root, which is mode 0700), the cluster lives in a directory
// derived from DataDir under the postgres user's home directory instead; the
// log says where, and Result.DataDir reports it. Bootstrap never loosens the
// permissions of directories it did not create.
//
// Ensure holds an exclusive file lock (DataDir + ".lock") while it creates or
// starts the cluster, so test binaries that `go test ./...` runs in parallel
// can all call it at once.
package bootstrap
