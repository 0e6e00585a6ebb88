// Command mkdeb writes the plantroom-edge Debian package for one
// architecture (scripts/release.sh runs it for each):
//
//	go run ./internal/release/mkdeb -version 1.2.0 -arch arm -binary dist/edge-agent_1.2.0_linux_armv7 -out dist
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/plantroom/plantroom/internal/release"
)

func main() {
	version := flag.String("version", "", "package version (starts with a digit)")
	arch := flag.String("arch", "", "GOARCH of the binary: amd64, arm64 or arm")
	binary := flag.String("binary", "", "the edge-agent binary built for -arch")
	repo := flag.String("repo", ".", "repository root (edge/deploy, configs/templates)")
	out := flag.String("out", "dist", "directory for the package")
	flag.Parse()
	p := release.EdgePackage{Repo: *repo, Binary: *binary, GoArch: *arch, Version: *version}
	path, err := p.WriteFile(*out)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Println(path)
}
