// Package buildinfo holds what a release build stamps into every binary
// (edge-agent, cloud, devsim): the version, the commit and the build date.
// scripts/release.sh sets them with
//
//	-ldflags "-X github.com/plantroom/plantroom/internal/buildinfo.Version=1.2.0
//	          -X github.com/plantroom/plantroom/internal/buildinfo.Commit=<sha>
//	          -X github.com/plantroom/plantroom/internal/buildinfo.Date=<RFC 3339>"
//
// A plain `go build` inside the repository leaves Version at its default and
// takes the commit and date from the VCS stamp the go command records.
package buildinfo

import (
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/prometheus/client_golang/prometheus"
)

// Set at link time by scripts/release.sh; see the package comment.
var (
	Version = "0.1.0-dev"
	Commit  = ""
	Date    = ""
)

// Info is one binary's build stamp.
type Info struct {
	Version   string
	Commit    string
	Date      string
	GoVersion string
	Platform  string // GOOS/GOARCH, plus GOARM on 32-bit ARM
}

// Get returns the stamp of the running binary. Commit and date fall back to
// the go command's VCS stamp, then to "unknown".
func Get() Info {
	in := Info{Version: Version, Commit: Commit, Date: Date, GoVersion: runtime.Version(),
		Platform: runtime.GOOS + "/" + runtime.GOARCH}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			switch {
			case s.Key == "vcs.revision" && in.Commit == "":
				in.Commit = s.Value
			case s.Key == "vcs.time" && in.Date == "":
				in.Date = s.Value
			case s.Key == "GOARM":
				in.Platform += "/v" + s.Value
			}
		}
	}
	if in.Commit == "" {
		in.Commit = "unknown"
	}
	if in.Date == "" {
		in.Date = "unknown"
	}
	return in
}

// String is what `-version` prints, e.g.
// "edge-agent 1.2.0 (commit 3f2a…, built 2026-12-05T23:00:00Z, go1.26.8 linux/arm/v7)".
func String(program string) string {
	in := Get()
	return fmt.Sprintf("%s %s (commit %s, built %s, %s %s)", program, in.Version, in.Commit, in.Date, in.GoVersion, in.Platform)
}

// Collector is the plantroom_build_info gauge: always 1, the stamp in its
// labels, so a dashboard can tell which build every process runs.
func Collector(program string) prometheus.Collector {
	in := Get()
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "plantroom_build_info",
		Help: "The binary's build stamp (version, commit, build date, Go version, platform); always 1.",
		ConstLabels: prometheus.Labels{"program": program, "version": in.Version, "commit": in.Commit,
			"date": in.Date, "goversion": in.GoVersion, "platform": in.Platform},
	})
	g.Set(1)
	return g
}
