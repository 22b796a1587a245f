// Command connectors measures the CRM connectors against the simulator over
// loopback: fetch and normalise every client of a demo-N tenant, reporting
// clients per second and peak heap, and checks that peak heap for a big
// tenant stays within 1.2× of a small one (the stream is flat).
//
//	go run ./bench/connectors                 # 100,000 and 1,000,000 clients
//	go run ./bench/connectors -n 10000 -big 0 # quick run, no big tenant
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"runtime"
	"runtime/pprof"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/wedsync/crmhub/crm"
	"github.com/wedsync/crmhub/crm/crmsim"
	"github.com/wedsync/crmhub/crm/honeybook"
	"github.com/wedsync/crmhub/crm/tave"
)

func main() {
	if err := run(context.Background(), os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(1)
	}
}

type result struct {
	provider string
	n        int
	clients  int
	elapsed  time.Duration
	peakHeap uint64
}

func run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("connectors", flag.ContinueOnError)
	n := fs.Int("n", 100_000, "clients in the base tenant")
	big := fs.Int("big", 1_000_000, "clients in the big tenant (0 skips it)")
	providers := fs.String("providers", "tave,honeybook", "providers to measure")
	bigProviders := fs.String("big-providers", "tave", "providers to measure with the big tenant")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile to this file")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return fmt.Errorf("error creating profile: %w", err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return fmt.Errorf("error starting profile: %w", err)
		}
		defer pprof.StopCPUProfile()
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("error listening: %w", err)
	}
	srv := &http.Server{Handler: crmsim.New(crmsim.Config{}), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()
	base := "http://" + ln.Addr().String()

	var results []result
	for _, p := range strings.Split(*providers, ",") {
		r, err := measure(ctx, base, p, *n)
		if err != nil {
			return err
		}
		results = append(results, r)
		if *big > 0 && strings.Contains(","+*bigProviders+",", ","+p+",") {
			rb, err := measure(ctx, base, p, *big)
			if err != nil {
				return err
			}
			results = append(results, rb)
		}
	}

	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "provider\tclients\tseconds\tclients/s\tpeak heap MiB\tvs base\t")
	baseHeap := map[string]uint64{}
	for _, r := range results {
		ratio := "-"
		if r.n == *n {
			baseHeap[r.provider] = r.peakHeap
		} else if b := baseHeap[r.provider]; b > 0 {
			ratio = fmt.Sprintf("%.2fx", float64(r.peakHeap)/float64(b))
		}
		fmt.Fprintf(tw, "%s\t%d\t%.1f\t%.0f\t%.1f\t%s\t\n", r.provider, r.clients, r.elapsed.Seconds(),
			float64(r.clients)/r.elapsed.Seconds(), float64(r.peakHeap)/(1<<20), ratio)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Printf("(%s, GOMAXPROCS %d; the simulator runs in the same process, so its heap is included)\n", runtime.Version(), runtime.GOMAXPROCS(0))
	return nil
}

func connector(base, provider string, n int) (crm.Connector, error) {
	cred := fmt.Sprintf("demo-%d", n)
	switch provider {
	case "tave":
		return tave.New(tave.Config{BaseURL: base + "/tave/api/v2", APIKey: cred, RequestsPerMinute: -1})
	case "honeybook":
		return honeybook.New(honeybook.Config{BaseURL: base + "/honeybook/api/v3", TokenURL: base + "/honeybook/oauth2/token",
			ClientID: cred, ClientSecret: "bench", RequestsPerMinute: -1, Concurrency: 16})
	}
	return nil, fmt.Errorf("unknown provider %q", provider)
}

func measure(ctx context.Context, base, provider string, n int) (result, error) {
	c, err := connector(base, provider, n)
	if err != nil {
		return result{}, err
	}
	runtime.GC()
	var peak atomic.Uint64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		var ms runtime.MemStats
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
		for {
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > peak.Load() {
				peak.Store(ms.HeapInuse)
			}
			select {
			case <-stop:
				return
			case <-t.C:
			}
		}
	})
	clients, rejects := 0, 0
	start := time.Now()
	err = c.Stream(ctx, crm.StreamRequest{Mode: crm.ModeFull}, func(_ context.Context, p crm.Page) error {
		clients += len(p.Clients)
		rejects += len(p.Rejects)
		return nil
	})
	elapsed := time.Since(start)
	close(stop)
	wg.Wait()
	if err != nil {
		return result{}, fmt.Errorf("error streaming %s demo-%d: %w", provider, n, err)
	}
	if clients != n || rejects != 0 {
		return result{}, errors.New(fmt.Sprintf("%s demo-%d: got %d clients and %d rejects", provider, n, clients, rejects))
	}
	fmt.Fprintf(os.Stderr, "%s demo-%d: %d clients in %s\n", provider, n, clients, elapsed.Round(time.Millisecond))
	return result{provider: provider, n: n, clients: clients, elapsed: elapsed, peakHeap: peak.Load()}, nil
}
