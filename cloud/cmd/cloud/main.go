// Command cloud runs the Plantroom cloud: the MQTT broker, the ingest into
// ClickHouse and the HTTP API, all in one process or split across several
// (see docs/cloud.md).
//
//	cloud [-config configs/cloud.yaml]           run the configured components
//	cloud migrate [-config configs/cloud.yaml]   apply schema migrations and exit
//	cloud hash-password                          bcrypt hash of a secret read from stdin
//	cloud hash-token                             "sha256:<hex>" of a token read from stdin
//	cloud -version                               print the build stamp and exit
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/plantroom/plantroom/cloud/api"
	"github.com/plantroom/plantroom/cloud/app"
	"github.com/plantroom/plantroom/cloud/console"
	"github.com/plantroom/plantroom/internal/buildinfo"
)

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	cmd := "run"
	if len(args) > 0 && args[0] != "" && args[0][0] != '-' {
		cmd, args = args[0], args[1:]
	}
	if len(args) == 1 && (args[0] == "-version" || args[0] == "--version") && cmd == "run" {
		fmt.Println(buildinfo.String("cloud"))
		return 0
	}
	switch cmd {
	case "hash-password", "hash-token":
		secret, err := app.ReadSecret(os.Stdin)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		if cmd == "hash-token" {
			fmt.Println(app.HashToken(secret))
			return 0
		}
		h, err := app.HashPassword(secret)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		fmt.Println(h)
		return 0
	case "run", "migrate":
	default:
		fmt.Fprintf(os.Stderr, "unknown command %q\nusage: cloud [run|migrate] [-config file] | cloud hash-password | cloud hash-token | cloud -version\n", cmd)
		return 2
	}

	fs := flag.NewFlagSet("cloud "+cmd, flag.ContinueOnError)
	path := fs.String("config", "configs/cloud.yaml", "cloud configuration `file`")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	cfg, err := app.Load(*path)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	log := app.NewLogger(cfg.Log, os.Stderr)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	opts := app.Options{Logger: log, Migrations: alarmMigrations()}
	if cmd == "migrate" {
		if err := app.Migrate(ctx, cfg, opts); err != nil {
			log.Error("migration failed", "error", err)
			return 1
		}
		log.Info("schema up to date", "database", cfg.ClickHouse.Database)
		return 0
	}

	a, err := app.New(ctx, cfg, opts)
	if err != nil {
		log.Error("cannot start the cloud", "error", err)
		return 1
	}
	var srv *api.Server
	if cfg.Has(app.ComponentAPI) {
		deps := api.Deps{Bundle: a.Bundle, DB: a.DB, Latest: a.Latest, Presence: a.Presence,
			Logger: log.With("component", "api"), Registry: a.Registry}
		var con *console.Console
		if !cfg.Console.Disabled {
			if con, err = console.New(cfg.Console, console.Deps{Org: &a.Bundle.Org, Rules: &a.Bundle.Rules, Logger: log.With("component", "console")}); err != nil {
				log.Error("cannot start the cloud", "error", err)
				return 1
			}
			deps.Sessions = con
		}
		srv, err = api.New(cfg.API, deps)
		if err != nil {
			log.Error("cannot start the cloud", "error", err)
			return 1
		}
		if con != nil {
			con.Attach(srv)
		}
	}
	if err := addAlarms(a, srv, log); err != nil {
		log.Error("cannot start the cloud", "error", err)
		return 1
	}
	if srv != nil {
		a.Add(app.ComponentAPI, srv)
	}
	if err := a.Run(ctx); err != nil {
		log.Error("cloud stopped with an error", "error", err)
		return 1
	}
	return 0
}
