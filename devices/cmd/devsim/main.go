// Command devsim runs a simulated building, or backfills its history.
//
//	devsim -config configs/building-garden.yaml [-scenario FILE] [-state FILE]
//	devsim -version
//	devsim backfill -config configs/building-garden.yaml [-state FILE] -gateway gw-garden-1 \
//	    -company acme -project garden -from 2026-08-01 -to 2026-11-01 \
//	    -broker tcp://127.0.0.1:1883 -username gw-garden-1 -password … -expected out.json
//
// devices/README.md documents the configuration, the control API and the
// backfill flags.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/plantroom/plantroom/config"
	"github.com/plantroom/plantroom/devices/backfill"
	"github.com/plantroom/plantroom/devices/sim"
	"github.com/plantroom/plantroom/internal/buildinfo"
	"github.com/plantroom/plantroom/protocol"
)

func main() {
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var err error
	if len(os.Args) == 2 && (os.Args[1] == "-version" || os.Args[1] == "--version") {
		fmt.Println(buildinfo.String("devsim"))
		return
	}
	if len(os.Args) > 1 && os.Args[1] == "backfill" {
		err = runBackfill(ctx, os.Args[2:], log)
	} else {
		args := os.Args[1:]
		if len(args) > 0 && args[0] == "run" {
			args = args[1:]
		}
		err = runBuilding(ctx, args, log)
	}
	if err != nil && !errors.Is(err, flag.ErrHelp) {
		log.Error("devsim failed", "error", err)
		os.Exit(1)
	}
}

func runBuilding(ctx context.Context, args []string, log *slog.Logger) error {
	fs := flag.NewFlagSet("devsim", flag.ContinueOnError)
	cfgPath := fs.String("config", "configs/building-garden.yaml", "building configuration file")
	scenario := fs.String("scenario", "", "scenario file to play from the start (optional)")
	speed := fs.Float64("speed", 0, "override clock.speed: virtual seconds per real second")
	seed := fs.Uint64("seed", 0, "override the configuration's seed")
	start := fs.String("start", "", "override clock.start (RFC 3339)")
	state := fs.String("state", "", "override state_file: device counters kept across runs")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg, err := sim.LoadConfig(*cfgPath)
	if err != nil {
		return err
	}
	if *state != "" {
		cfg.StateFile = *state
	}
	if *speed > 0 {
		cfg.Clock.Speed = *speed
	}
	if *seed != 0 {
		cfg.Seed = *seed
	}
	if *start != "" {
		if cfg.Clock.Start, err = time.Parse(time.RFC3339, *start); err != nil {
			return fmt.Errorf("cannot parse -start %q: %w", *start, err)
		}
	}
	templates, err := config.LoadTemplates(cfg.Templates)
	if err != nil {
		return err
	}
	b, err := sim.New(cfg, templates, log)
	if err != nil {
		return err
	}
	if err := b.Start(ctx); err != nil {
		return err
	}
	defer b.Stop()
	if *scenario != "" {
		sc, err := sim.LoadScenario(*scenario)
		if err != nil {
			return err
		}
		if err := b.Play(sc); err != nil {
			return err
		}
	}
	for _, d := range b.Devices() {
		log.Info("device", "id", d.ID, "template", d.Template, "addr", d.Addr, "topic", d.Topic)
	}
	if a := b.ControlAddr(); a != "" {
		log.Info("control API listening", "url", "http://"+a+"/devices")
	}
	<-ctx.Done()
	log.Info("stopping")
	return nil
}

// listFlag collects a repeatable flag.
type listFlag []string

func (l *listFlag) String() string     { return fmt.Sprint(*l) }
func (l *listFlag) Set(s string) error { *l = append(*l, s); return nil }

func runBackfill(ctx context.Context, args []string, log *slog.Logger) error {
	fs := flag.NewFlagSet("devsim backfill", flag.ContinueOnError)
	cfgPath := fs.String("config", "configs/building-garden.yaml", "building configuration file")
	gateway := fs.String("gateway", "", "gateway id whose telemetry topic receives the batches (required)")
	company := fs.String("company", "", "company id of the gateway (required)")
	project := fs.String("project", "", "project id of the gateway (required)")
	from := fs.String("from", "", "start of the period, e.g. 2026-08-01 (project time zone)")
	to := fs.String("to", "", "end of the period, exclusive, e.g. 2026-11-01")
	tz := fs.String("tz", "Asia/Shanghai", "project time zone: dates, days and hours")
	interval := fs.Duration("interval", time.Minute, "time between two readings of a device")
	step := fs.Duration("step", 10*time.Second, "model time step (must divide -interval)")
	seqStart := fs.Uint64("seq-start", backfill.DefaultSeqStart, "batches are numbered from seq-start+1")
	metrics := fs.String("metrics", backfill.MetricsEnergy, "energy (counter and power of each device) or all")
	broker := fs.String("broker", "tcp://127.0.0.1:1883", "cloud MQTT broker")
	username := fs.String("username", "", "MQTT user (the gateway id)")
	password := fs.String("password", os.Getenv("DEVSIM_MQTT_PASSWORD"), "MQTT password (default $DEVSIM_MQTT_PASSWORD)")
	clientID := fs.String("client-id", "", "MQTT client id (default <gateway>-backfill)")
	window := fs.Int("window", 32, "batches awaiting PUBACK at once")
	timeout := fs.Duration("timeout", 30*time.Second, "connect and PUBACK timeout")
	expected := fs.String("expected", "", "write the expected kWh per device per day and hour to this JSON file")
	allowFuture := fs.Bool("allow-future", false, "allow a period that ends in the future")
	state := fs.String("state", "", "override state_file: counters start from it (if it exists) and end in it")
	var repl, gaps listFlag
	fs.Var(&repl, "replace-meter", "DEVICE@TIME: the device's meter is replaced (repeatable)")
	fs.Var(&gaps, "gap", "[DEVICE@]FROM/TO: no readings in [FROM, TO) (repeatable)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	loc, err := time.LoadLocation(*tz)
	if err != nil {
		return fmt.Errorf("cannot load time zone %q: %w", *tz, err)
	}
	o := backfill.Options{
		Gateway:  protocol.GatewayRef{Company: *company, Project: *project, Gateway: *gateway},
		Interval: *interval, Step: *step, Location: loc, SeqStart: *seqStart, Metrics: *metrics,
		AllowFuture: *allowFuture, Broker: *broker, Username: *username, Password: *password,
		ClientID: *clientID, Window: *window, Timeout: *timeout,
	}
	if o.From, err = backfill.ParseTime(*from, loc); err != nil {
		return fmt.Errorf("-from: %w", err)
	}
	if o.To, err = backfill.ParseTime(*to, loc); err != nil {
		return fmt.Errorf("-to: %w", err)
	}
	for _, s := range repl {
		r, err := backfill.ParseReplacement(s, loc)
		if err != nil {
			return err
		}
		o.Replacements = append(o.Replacements, r)
	}
	for _, s := range gaps {
		g, err := backfill.ParseGap(s, loc)
		if err != nil {
			return err
		}
		o.Gaps = append(o.Gaps, g)
	}
	if o.Building, err = sim.LoadConfig(*cfgPath); err != nil {
		return err
	}
	if *state != "" {
		o.Building.StateFile = *state
	}
	if o.Templates, err = config.LoadTemplates(o.Building.Templates); err != nil {
		return err
	}
	exp, err := backfill.Run(ctx, o, log)
	if err != nil {
		return err
	}
	if *expected != "" {
		if err := exp.WriteFile(*expected); err != nil {
			return err
		}
		log.Info("expected totals written", "file", filepath.Clean(*expected))
	}
	return nil
}
