// Package release builds the Debian packages of a release (make release):
// plantroom-edge for each architecture, from the binaries scripts/release.sh
// cross-compiled. The packages are written in Go with nfpm
// (github.com/goreleaser/nfpm/v2), so a release needs no dpkg-deb, fakeroot
// or debhelper: any machine with Go builds every architecture's package.
//
// What goes into the package, and the maintainer scripts, live beside the
// unit in edge/deploy/; docs/edge.md is the installer's side of it.
package release

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/goreleaser/nfpm/v2"
	"github.com/goreleaser/nfpm/v2/deb"
	"github.com/goreleaser/nfpm/v2/files"
)

// DebArch is Debian's name for a Go architecture: amd64, arm64, and armhf
// for GOARCH=arm (built with GOARM=7).
func DebArch(goarch string) (string, error) {
	switch goarch {
	case "amd64", "arm64":
		return goarch, nil
	case "arm":
		return "armhf", nil
	}
	return "", fmt.Errorf("cannot package GOARCH %q: only amd64, arm64 and arm are released", goarch)
}

// EdgePackage describes plantroom-edge.
type EdgePackage struct {
	Repo    string    // repository root: edge/deploy/ and configs/templates/ are read from it
	Binary  string    // the edge-agent binary built for GOARCH
	GoArch  string    // amd64, arm64 or arm
	Version string    // Debian version: starts with a digit, e.g. 1.2.0 or 0.1.0~git20261205.3f2a1c9
	MTime   time.Time // every file's time; zero: the binary's
}

// FileName is the package's conventional file name,
// plantroom-edge_<version>_<arch>.deb.
func (p EdgePackage) FileName() (string, error) {
	arch, err := DebArch(p.GoArch)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("plantroom-edge_%s_%s.deb", p.Version, arch), nil
}

// Info is the nfpm description of the package.
func (p EdgePackage) Info() (*nfpm.Info, error) {
	arch, err := DebArch(p.GoArch)
	if err != nil {
		return nil, err
	}
	if p.Version == "" || p.Version[0] < '0' || p.Version[0] > '9' {
		return nil, fmt.Errorf("cannot package version %q: a Debian version starts with a digit", p.Version)
	}
	st, err := os.Stat(p.Binary)
	if err != nil {
		return nil, fmt.Errorf("cannot package the edge agent: %w", err)
	}
	mtime := p.MTime
	if mtime.IsZero() {
		mtime = st.ModTime().UTC().Truncate(time.Second)
	}
	deploy := filepath.Join(p.Repo, "edge", "deploy")
	script := func(name string) (string, error) {
		path := filepath.Join(deploy, "debian", name)
		if _, err := os.Stat(path); err != nil {
			return "", fmt.Errorf("cannot package the edge agent: %w", err)
		}
		return path, nil
	}
	scripts := nfpm.Scripts{}
	for _, s := range []struct {
		name string
		dst  *string
	}{{"postinst", &scripts.PostInstall}, {"prerm", &scripts.PreRemove}, {"postrm", &scripts.PostRemove}} {
		if *s.dst, err = script(s.name); err != nil {
			return nil, err
		}
	}

	file := func(src, dst string, mode os.FileMode) *files.Content {
		return &files.Content{Source: src, Destination: dst, Type: files.TypeFile,
			FileInfo: &files.ContentFileInfo{Owner: "root", Group: "root", Mode: mode, MTime: mtime}}
	}
	conf := func(src, dst string) *files.Content {
		c := file(src, dst, 0o644)
		c.Type = files.TypeConfig
		return c
	}
	contents := files.Contents{
		file(p.Binary, "/usr/bin/edge-agent", 0o755),
		file(filepath.Join(deploy, "plantroom-edge.service"), "/usr/lib/systemd/system/plantroom-edge.service", 0o644),
		file(filepath.Join(deploy, "plantroom-edge.sysusers"), "/usr/lib/sysusers.d/plantroom-edge.conf", 0o644),
		file(filepath.Join(p.Repo, "LICENSE"), "/usr/share/doc/plantroom-edge/copyright", 0o644),
		conf(filepath.Join(deploy, "edge.example.yaml"), "/etc/plantroom/edge.example.yaml"),
		// Owners are set by postinst once the user exists.
		{Destination: "/etc/plantroom", Type: files.TypeDir,
			FileInfo: &files.ContentFileInfo{Owner: "root", Group: "root", Mode: 0o750, MTime: mtime}},
		{Destination: "/var/lib/plantroom-edge", Type: files.TypeDir,
			FileInfo: &files.ContentFileInfo{Owner: "root", Group: "root", Mode: 0o700, MTime: mtime}},
	}
	templates, err := filepath.Glob(filepath.Join(p.Repo, "configs", "templates", "*.yaml"))
	if err != nil || len(templates) == 0 {
		return nil, fmt.Errorf("cannot package the device templates: none in %s", filepath.Join(p.Repo, "configs", "templates"))
	}
	for _, t := range templates {
		contents = append(contents, conf(t, "/etc/plantroom/templates/"+filepath.Base(t)))
	}

	info := &nfpm.Info{
		Name:          "plantroom-edge",
		Arch:          arch,
		Platform:      "linux",
		Version:       p.Version,
		VersionSchema: "none",
		Section:       "net",
		Priority:      "optional",
		Maintainer:    "Plantroom developers <plantroom@example.org>",
		Description: "Plantroom edge agent for a plant room's gateway\n" +
			"Polls the building's equipment (elevators, pumps, lighting, energy meters)\n" +
			"over Modbus TCP/RTU and MQTT, keeps every reading in a durable queue on\n" +
			"the box and sends it to the Plantroom cloud over MQTT.",
		Vendor:   "Plantroom",
		Homepage: "https://github.com/plantroom/plantroom",
		License:  "Apache-2.0",
		MTime:    mtime,
		Overridables: nfpm.Overridables{
			Recommends: []string{"systemd"},
			Contents:   contents,
			Scripts:    scripts,
			Umask:      0o022,
		},
	}
	return info, nil
}

// Write builds the package into w.
func (p EdgePackage) Write(w io.Writer) error {
	info, err := p.Info()
	if err != nil {
		return err
	}
	info = nfpm.WithDefaults(info)
	if err := nfpm.PrepareForPackager(info, "deb"); err != nil {
		return fmt.Errorf("cannot prepare plantroom-edge %s for %s: %w", p.Version, info.Arch, err)
	}
	if err := deb.Default.Package(info, w); err != nil {
		return fmt.Errorf("cannot build plantroom-edge %s for %s: %w", p.Version, info.Arch, err)
	}
	return nil
}

// WriteFile builds the package into dir under its conventional name and
// returns the file's path.
func (p EdgePackage) WriteFile(dir string) (string, error) {
	name, err := p.FileName()
	if err != nil {
		return "", err
	}
	path := filepath.Join(dir, name)
	f, err := os.Create(path)
	if err != nil {
		return "", fmt.Errorf("cannot write the package: %w", err)
	}
	if err := p.Write(f); err != nil {
		f.Close()
		os.Remove(path)
		return "", err
	}
	if err := f.Close(); err != nil {
		return "", fmt.Errorf("cannot write the package %s: %w", path, err)
	}
	return path, nil
}
