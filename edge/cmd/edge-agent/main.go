// Command edge-agent runs a plant room's edge agent:
//
//	edge-agent -config configs/edge-gw-garden-1.yaml
//
// SIGHUP reloads the device list (and templates) from the same file;
// SIGINT or SIGTERM stops it gracefully. See edge/README.md.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/plantroom/plantroom/edge/agent"
	"github.com/plantroom/plantroom/internal/buildinfo"
)

func main() {
	path := flag.String("config", "", "agent configuration file (YAML)")
	check := flag.Bool("check", false, "validate the configuration and exit")
	version := flag.Bool("version", false, "print the version and exit")
	jsonLog := flag.Bool("log-json", false, "log JSON lines instead of text")
	flag.Parse()
	if *version {
		fmt.Println(buildinfo.String("edge-agent"))
		return
	}
	if *path == "" {
		fmt.Fprintln(os.Stderr, "usage: edge-agent -config FILE [-check] [-log-json]")
		os.Exit(2)
	}
	var h slog.Handler = slog.NewTextHandler(os.Stderr, nil)
	if *jsonLog {
		h = slog.NewJSONHandler(os.Stderr, nil)
	}
	log := slog.New(h)
	if err := run(*path, *check, log); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func run(path string, check bool, log *slog.Logger) error {
	cfg, err := agent.Load(path)
	if err != nil {
		return err
	}
	a, err := agent.New(cfg, log)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if check {
		fmt.Printf("%s: configuration is valid (%d devices)\n", path, len(cfg.Devices))
		if note := agent.QueueRoomNote(cfg); note != "" {
			fmt.Printf("note: %s\n", note)
		}
		return nil
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGHUP, syscall.SIGINT, syscall.SIGTERM)
	if err := a.Start(context.Background()); err != nil {
		return err
	}
	for sig := range sigs {
		if sig != syscall.SIGHUP {
			break
		}
		next, err := agent.Load(path)
		if err == nil {
			err = a.Reload(next)
		}
		if err != nil {
			log.Error("reload refused; keeping the running devices", "config", path, "err", err)
		}
	}
	a.Stop()
	return nil
}
