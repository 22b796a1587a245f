package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/wedsync/crmhub/crm/crmsim"
)

// simCommand runs the CRM simulator alone: Tave under /tave/api/v2 and
// HoneyBook under /honeybook/api/v3.
func simCommand(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("sim", flag.ContinueOnError)
	addr := fs.String("addr", "127.0.0.1:8081", "listen address")
	if err := fs.Parse(args); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return fmt.Errorf("error listening on %s: %w", *addr, err)
	}
	srv := &http.Server{Handler: crmsim.New(crmsim.Config{}), ReadHeaderTimeout: 10 * time.Second}
	fmt.Fprintf(stderr, "CRM simulator on http://%s\n  Tave       http://%[1]s/tave/api/v2      (X-API-KEY: demo-100)\n  HoneyBook  http://%[1]s/honeybook/api/v3 (token: POST /honeybook/oauth2/token, client_id demo-100)\n", ln.Addr())
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
