package main

import (
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/plantroom/plantroom/cloud/alarm"
	"github.com/plantroom/plantroom/cloud/alarm/alarmhttp"
	"github.com/plantroom/plantroom/cloud/api"
	"github.com/plantroom/plantroom/cloud/app"
	"github.com/plantroom/plantroom/cloud/command"
	"github.com/plantroom/plantroom/cloud/command/commandhttp"
	"github.com/plantroom/plantroom/cloud/notify"
	"github.com/plantroom/plantroom/cloud/photo"
	"github.com/plantroom/plantroom/cloud/resident"
	"github.com/plantroom/plantroom/cloud/resident/residenthttp"
	"github.com/plantroom/plantroom/cloud/store"
	"github.com/plantroom/plantroom/cloud/workorder"
	"github.com/plantroom/plantroom/cloud/workorder/workorderhttp"
)

// alarmMigrations are the schema migrations of the alarm, work-order,
// resident request and command logs.
func alarmMigrations() []store.Migration {
	return slices.Concat(alarm.Migrations(), workorder.Migrations(), resident.Migrations(), command.Migrations())
}

// addAlarms wires the alarm engine, the work-order desk and the webhooks into
// a process that runs the ingest: the engine observes what the ingest
// commits. Their routes join srv when this process also serves the API.
// Without an ingest here there is nothing to evaluate, so nothing is added.
func addAlarms(a *app.App, srv *api.Server, log *slog.Logger) error {
	if a.Config.Alarms.Owner == app.AlarmsLease {
		return addLeasedAlarms(a, srv, log)
	}
	if a.Ingest == nil {
		return nil
	}
	p, err := newAlarmParts(a, log)
	if err != nil {
		return err
	}
	commands, err := newCommandDesk(a, p.engine, log)
	if err != nil {
		return err
	}
	a.Add("notify", p.notifier) // start order: notifier, desk, residents, engine, commands
	a.Add("workorders", p.desk)
	a.Add("residents", p.residents)
	a.Add("alarms", p.engine)
	a.Add("commands", commands)
	a.AddObserver(p.engine)
	a.AddObserver(commands)
	p.commands = commands // in the devices' maintenance record
	if srv != nil {
		srv.Register(p.allRoutes()...)
	}
	return nil
}

// newCommandDesk builds remote control (cloud/command) for a process that
// runs the ingest and the alarm engine: commands go out on the ingest's
// broker connection, results come back as ingest events, and the engine's
// active alarms refuse commands (critical alarms, rule interlocks). With
// alarms.owner: lease only the lease's owner runs it (addLeasedAlarms).
func newCommandDesk(a *app.App, engine *alarm.Engine, log *slog.Logger) (*command.Desk, error) {
	return command.NewDesk(command.Config{Org: &a.Bundle.Org, Templates: a.Bundle.Templates, Rules: &a.Bundle.Rules,
		Log: command.NewClickHouseLog(a.DB.Conn()), Publish: a.Ingest.Publish, Alarms: activeAlarms(engine),
		Feed: engine.Feed(), Logger: log.With("component", "commands"), Registerer: a.Registry})
}

// activeAlarms lists the alarms active on a device for the command desk's
// checks (a critical alarm or an interlocking rule refuses commands).
func activeAlarms(engine *alarm.Engine) func(device string) []command.Alarm {
	return func(device string) []command.Alarm {
		var out []command.Alarm
		for _, a := range engine.ActiveOn(device) {
			out = append(out, command.Alarm{ID: a.ID, Rule: a.Rule, Name: a.RuleName, Severity: a.Severity})
		}
		return out
	}
}

// alarmParts are the alarm engine, the work-order desk, the resident
// requests and the webhooks of one process, built and not started; with
// alarms.owner: lease also the command desk, which the lease's owner runs.
type alarmParts struct {
	notifier  *notify.Webhooks
	desk      *workorder.Desk
	residents *resident.Service
	engine    *alarm.Engine
	photos    *photo.Photos
	// commands, when this process runs remote control, join the devices'
	// maintenance record, and the process serves their routes
	// (allRoutes).
	commands *command.Desk
}

// routes are their API routes; p nil gives the same routes without
// handlers to run (a replica that forwards them to the owner).
func (p *alarmParts) routes() []api.Route {
	if p == nil {
		return slices.Concat(alarmhttp.Routes(nil), workorderhttp.Routes(nil, nil, nil), residenthttp.Routes(nil))
	}
	var opts []workorderhttp.Option
	if p.commands != nil {
		opts = append(opts, workorderhttp.WithCommands(p.commands))
	}
	return slices.Concat(alarmhttp.Routes(p.engine), workorderhttp.Routes(p.desk, p.engine, p.photos, opts...), residenthttp.Routes(p.residents))
}

// allRoutes are the routes of the process that runs the parts (the one
// process, or the lease's owner): routes and the command desk's; p nil:
// without handlers (a follower forwards them).
func (p *alarmParts) allRoutes() []api.Route {
	if p == nil {
		return slices.Concat(p.routes(), commandhttp.Routes(nil))
	}
	return slices.Concat(p.routes(), commandhttp.Routes(p.commands))
}

func newAlarmParts(a *app.App, log *slog.Logger) (*alarmParts, error) {
	feed := alarm.NewFeed(0, nil)
	notifier, err := notify.New(notify.Config{Org: &a.Bundle.Org, Logger: log.With("component", "notify"), Registerer: a.Registry})
	if err != nil {
		return nil, fmt.Errorf("cannot set up webhooks: %w", err)
	}
	photos := photo.New(photo.Dir(a.Config.Photos.Dir), a.Config.Photos.MaxBytes)
	desk, err := workorder.New(workorder.Config{Org: &a.Bundle.Org, Rules: &a.Bundle.Rules,
		Log: workorder.NewClickHouseLog(a.DB.Conn()), Feed: feed, Notifier: notifier, Photos: photos,
		Logger: log.With("component", "workorders"), Registerer: a.Registry,
		CheckInterval: a.Config.Alarms.SLACheckInterval.Duration, Window: a.Config.Alarms.RecentWindow.Duration})
	if err != nil {
		return nil, fmt.Errorf("cannot set up work orders: %w", err)
	}
	alog := alarm.NewClickHouseLog(a.DB.Conn())
	presence := a.Presence
	engine, err := alarm.New(alarm.Config{Org: &a.Bundle.Org, Rules: &a.Bundle.Rules, Templates: a.Bundle.Templates, Log: alog, Readings: alog,
		GatewayStatus: func(id string) (bool, time.Time, bool) {
			g, ok := presence.Gateway(id)
			return !g.Online, g.Since, ok && g.Known
		},
		// Device staleness comes from the ingest's presence (device_stale,
		// with its start-up grace), the judgement the API shows too.
		NoStaleWatch: true,
		Window:       a.Config.Alarms.RecentWindow.Duration,
		Feed:         feed, Sinks: []alarm.Sink{desk}, Notifier: notifier,
		Logger: log.With("component", "alarms"), Registerer: a.Registry})
	if err != nil {
		return nil, fmt.Errorf("cannot set up alarms: %w", err)
	}
	residents, err := resident.New(resident.Config{Org: &a.Bundle.Org, Desk: desk, Photos: photos, Log: resident.NewClickHouseLog(a.DB.Conn()),
		Limits: a.Config.Residents, Logger: log.With("component", "residents")})
	if err != nil {
		return nil, fmt.Errorf("cannot set up resident requests: %w", err)
	}
	return &alarmParts{notifier: notifier, desk: desk, residents: residents, engine: engine, photos: photos}, nil
}
