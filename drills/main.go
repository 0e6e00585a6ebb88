// Command drills runs scripted faults over the whole Plantroom chain —
// simulated devices (bin/devsim) → edge agent (bin/edge-agent) → cloud
// broker → ingest → ClickHouse → API (bin/cloud) — and compares what the
// edge took with what was stored and what the energy reports say:
//
//	go run ./drills [-run uplink-down,edge-kill] [-cut 20s] [-long] [-keep]
//
// Each drill runs its own processes on free loopback ports with
// configuration generated into a temporary directory and its own database.
// One line per drill: drill, produced, stored, lost, duplicated, ok|FAIL.
// The exit status is 1 when a drill fails. See drills/README.md.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/plantroom/plantroom/config"
)

// Options are the drills' settings (flags).
type Options struct {
	repo, bin, configs, work string

	cut        time.Duration // uplink-down
	edgeCut    time.Duration // edge-kill: backlog built before the drain
	brokerDown time.Duration
	ingestDown time.Duration
	chDown     time.Duration
	diskWait   time.Duration // disk-bound: longest wait for the overflow
	drain      time.Duration // longest wait for the edge queue to empty at the end
	chMode     string
	keep       bool
	timeout    time.Duration // per drill

	log       *slog.Logger
	templates config.Templates
}

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	fs := flag.NewFlagSet("drills", flag.ContinueOnError)
	o := &Options{}
	only := fs.String("run", "", "comma-separated drills to run (default all): "+drillNames())
	long := fs.Bool("long", false, "minutes-long faults: uplink down 5m, backlog 2m, broker and ClickHouse down 1m")
	fs.StringVar(&o.repo, "repo", ".", "repository root (configs/, scripts/, bin/ below it)")
	fs.StringVar(&o.bin, "bin", "", "directory of edge-agent, cloud and devsim (default <repo>/bin)")
	fs.StringVar(&o.work, "dir", "", "where the drills' temporary directories go (default the system's)")
	fs.DurationVar(&o.cut, "cut", 20*time.Second, "uplink-down: how long the uplink is down")
	fs.DurationVar(&o.edgeCut, "backlog", 10*time.Second, "edge-kill: how long the uplink is cut to build the backlog")
	fs.DurationVar(&o.brokerDown, "broker-down", 5*time.Second, "broker-restart: how long the broker is stopped")
	fs.DurationVar(&o.ingestDown, "ingest-down", 3*time.Second, "ingest-kill: how long the ingest stays dead")
	fs.DurationVar(&o.chDown, "clickhouse-down", 10*time.Second, "clickhouse-restart: how long ClickHouse is stopped")
	fs.DurationVar(&o.diskWait, "disk-wait", 90*time.Second, "disk-bound: longest wait for the queue to overflow")
	fs.StringVar(&o.chMode, "clickhouse", CHPrivate, "clickhouse-restart: private (a server of the drill's own), shared (scripts/clickhouse.sh stop/start: nothing else may use it) or proxy (cut the path)")
	fs.BoolVar(&o.keep, "keep", false, "keep every drill's directory and database (failed drills keep theirs anyway)")
	fs.DurationVar(&o.timeout, "timeout", 5*time.Minute, "longest run of one drill")
	verbose := fs.Bool("v", false, "log each step")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	level := slog.LevelWarn
	if *verbose {
		level = slog.LevelInfo
	}
	o.log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	if *long {
		set := map[string]bool{}
		fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
		for name, d := range map[string]*time.Duration{"cut": &o.cut, "backlog": &o.edgeCut, "broker-down": &o.brokerDown,
			"clickhouse-down": &o.chDown} {
			if !set[name] {
				*d = map[string]time.Duration{"cut": 5 * time.Minute, "backlog": 2 * time.Minute, "broker-down": time.Minute,
					"clickhouse-down": time.Minute}[name]
			}
		}
		if !set["timeout"] {
			o.timeout = 20 * time.Minute
		}
	}
	o.drain = max(2*time.Minute, o.cut, o.edgeCut)
	selected, err := o.setup(*only)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	start := time.Now()
	var results []*Result
	for _, d := range selected {
		fmt.Fprintf(os.Stderr, "drill %s: %s\n", d.name, d.about)
		r := runDrill(ctx, o, d)
		results = append(results, r)
		if ctx.Err() != nil {
			break
		}
	}
	printTable(os.Stdout, results)
	fmt.Printf("\n%d drills in %s\n", len(results), time.Since(start).Round(time.Second))
	for _, r := range results {
		if !r.OK() {
			return 1
		}
	}
	if len(results) < len(selected) {
		return 1
	}
	return 0
}

// setup checks the options and picks the drills.
func (o *Options) setup(only string) ([]drill, error) {
	repo, err := filepath.Abs(o.repo)
	if err != nil {
		return nil, fmt.Errorf("cannot resolve -repo %q: %w", o.repo, err)
	}
	o.repo, o.configs = repo, filepath.Join(repo, "configs")
	if o.bin == "" {
		o.bin = filepath.Join(repo, "bin")
	}
	if !slices.Contains([]string{CHPrivate, CHShared, CHProxy}, o.chMode) {
		return nil, fmt.Errorf("cannot use -clickhouse %q: want %s, %s or %s", o.chMode, CHPrivate, CHShared, CHProxy)
	}
	if o.chMode == CHPrivate {
		if _, err := findCHServer(); err != nil {
			return nil, fmt.Errorf("cannot run a private ClickHouse for clickhouse-restart (use -clickhouse proxy): %w", err)
		}
	}
	for name, d := range map[string]time.Duration{"cut": o.cut, "backlog": o.edgeCut, "broker-down": o.brokerDown,
		"ingest-down": o.ingestDown, "clickhouse-down": o.chDown, "disk-wait": o.diskWait, "timeout": o.timeout} {
		if d <= 0 {
			return nil, fmt.Errorf("cannot use -%s %s: must be positive", name, d)
		}
	}
	if o.cut < 10*time.Second {
		return nil, fmt.Errorf("cannot use -cut %s: the edge needs about 10s (keepalive 5s) to notice a blackhole", o.cut)
	}
	for _, name := range []string{"edge-agent", "cloud", "devsim"} {
		if _, err := binary(o.bin, name); err != nil {
			return nil, err
		}
	}
	if o.templates, err = loadTemplates(filepath.Join(o.configs, "templates")); err != nil {
		return nil, err
	}
	if only == "" {
		return drills, nil
	}
	var out []drill
	for _, name := range strings.Split(only, ",") {
		name = strings.TrimSpace(name)
		i := slices.IndexFunc(drills, func(d drill) bool { return d.name == name })
		if i < 0 {
			return nil, fmt.Errorf("cannot run drill %q: unknown (have %s)", name, drillNames())
		}
		out = append(out, drills[i])
	}
	return out, nil
}

func drillNames() string {
	var names []string
	for _, d := range drills {
		names = append(names, d.name)
	}
	return strings.Join(names, ", ")
}

// runDrill sets up a stand, runs the drill's fault, settles and counts.
func runDrill(ctx context.Context, o *Options, d drill) (r *Result) {
	start := time.Now()
	r = &Result{Drill: d.name}
	defer func() { r.Elapsed = time.Since(start) }()
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	s, err := startStand(ctx, o, d)
	if s == nil {
		r.Err = err
		return r
	}
	defer func() {
		keep := o.keep || !r.OK()
		if keep {
			r.Dir = s.dir
		}
		cctx, ccancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer ccancel()
		s.Close(cctx, keep)
	}()
	if err != nil {
		r.Err = err
		return r
	}
	if err := d.fault(ctx, o, s, r); err != nil {
		r.Err = fmt.Errorf("cannot run the fault: %w", err)
		return r
	}
	t, err := s.settle(ctx)
	if err != nil {
		r.Err = fmt.Errorf("cannot settle: %w", err)
		return r
	}
	r.judge(t)
	if d.after != nil {
		if err := d.after(ctx, s, r); err != nil {
			r.Err = err
			return r
		}
	}
	e, err := s.checkEnergy(ctx)
	if err != nil {
		r.Err = fmt.Errorf("cannot compare the energy reports: %w", err)
		return r
	}
	r.judgeEnergy(e)
	return r
}

// startStand sets up and starts a drill's stand. A port can be taken by
// someone else between the drill choosing it and a process binding it;
// then the stand is set up once more on new ports. A stand that could not
// start is returned with the error, for its logs.
func startStand(ctx context.Context, o *Options, d drill) (*Stand, error) {
	for attempt := 1; ; attempt++ {
		s, err := newStand(ctx, o, d.name, d.spec(o))
		if err != nil {
			return nil, err
		}
		err = s.Start(ctx)
		if err == nil || attempt == 2 || !strings.Contains(err.Error(), "address already in use") {
			return s, err
		}
		o.log.Warn("a port was taken meanwhile; starting the drill again on new ports", "drill", d.name, "err", err)
		s.Close(ctx, false)
	}
}
