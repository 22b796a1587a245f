package bootstrap_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"

	"github.com/wedsync/crmhub/db/bootstrap"
)

// ExampleURL shows what a `crmhub dev-db-url` command for a Makefile does: it
// prints a URL that answers, starting a private cluster if it has to.
func ExampleURL() {
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	url, err := bootstrap.URL(context.Background(), log, bootstrap.Config{
		DatabaseURL: os.Getenv("DATABASE_URL"),
		Stdout:      os.Stderr, // Keep stdout for the URL.
		Stderr:      os.Stderr,
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Println(url)
}
