package app

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"net"
	"strings"

	"golang.org/x/crypto/bcrypt"

	"github.com/plantroom/plantroom/config"
)

// Demo credentials are published in README.md for configs/: anyone can
// sign in with them. They are harmless on loopback and an open door
// anywhere else.
func demoGatewayPassword(gateway string) string { return "demo-" + gateway + "-secret" }
func demoServicePassword(user string) []string {
	return []string{"demo-ingest-secret", "demo-" + user + "-secret"}
}
func demoStaffToken(staff string) string    { return "demo-" + staff }
func demoStaffPassword(staff string) string { return "demo-pw-" + staff }

// DemoCredentialWarnings names every credential of the repository's demo
// configuration that cfg would accept on a listener that is not loopback.
func DemoCredentialWarnings(cfg *Config, b *config.Bundle) []string {
	var out []string
	var brokerOpen []string
	if cfg.Has(ComponentBroker) {
		for _, l := range []string{cfg.Broker.Listen, cfg.Broker.TLSListen} {
			if l != "" && l != "off" && !isLoopback(l) {
				brokerOpen = append(brokerOpen, l)
			}
		}
	}
	if len(brokerOpen) > 0 {
		where := strings.Join(brokerOpen, ", ")
		for _, c := range b.Org.Companies {
			for _, p := range c.Projects {
				for _, g := range p.Gateways {
					if hashMatches(g.PasswordHash, demoGatewayPassword(g.ID)) {
						out = append(out, fmt.Sprintf("gateway %q has the demo password from README.md and the broker listens on %s", g.ID, where))
					}
				}
			}
		}
		for _, s := range cfg.Broker.EnabledServices() {
			for _, pw := range demoServicePassword(s.Username) {
				if hashMatches(s.PasswordHash, pw) {
					out = append(out, fmt.Sprintf("broker service %q has the demo password from configs/cloud.yaml and the broker listens on %s", s.Username, where))
					break
				}
			}
		}
	}
	if cfg.Has(ComponentAPI) && !isLoopback(cfg.API.Listen) {
		for _, s := range b.Org.Staff {
			if hashMatches(s.TokenHash, demoStaffToken(s.ID)) {
				out = append(out, fmt.Sprintf("staff %q has the demo API token from README.md and the API listens on %s", s.ID, cfg.API.Listen))
			}
			if s.PasswordHash != "" && hashMatches(s.PasswordHash, demoStaffPassword(s.ID)) {
				out = append(out, fmt.Sprintf("staff %q has the demo console password from README.md and the API listens on %s", s.ID, cfg.API.Listen))
			}
		}
	}
	return out
}

// hashMatches checks secret against a bcrypt or "sha256:<hex>" hash.
func hashMatches(hash, secret string) bool {
	if strings.HasPrefix(hash, "$2") {
		return bcrypt.CompareHashAndPassword([]byte(hash), []byte(secret)) == nil
	}
	if h, ok := strings.CutPrefix(hash, "sha256:"); ok {
		sum := sha256.Sum256([]byte(secret))
		return subtle.ConstantTimeCompare([]byte(h), []byte(hex.EncodeToString(sum[:]))) == 1
	}
	return false
}

// isLoopback reports whether a listen address reaches this machine only.
func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
