package config

import (
	"errors"
	"fmt"
	"slices"
)

// Bundle is the cloud's view of the organisation: the org file with the
// templates, tariffs and rules it refers to.
type Bundle struct {
	Org       Org
	Tariffs   TariffFile
	Templates Templates
	Rules     RuleFile
}

// LoadBundle loads the four parts and checks the references between them.
// Every problem of every file is reported: the organisation's own problems
// and its references to tariffs, templates and rules come back together.
// ruleFile may be empty (the edge agent needs no rules); rule overrides are
// then not checked.
func LoadBundle(orgFile, tariffFile, templateDir, ruleFile string) (*Bundle, error) {
	b := &Bundle{}
	orgErr := LoadFile(orgFile, &b.Org)
	tariffErr := LoadFile(tariffFile, &b.Tariffs)
	ts, templateErr := LoadTemplates(templateDir)
	b.Templates = ts
	var ruleErr error
	if ruleFile != "" {
		ruleErr = LoadFile(ruleFile, &b.Rules)
	}
	// References are checked whenever the organisation decoded, against the
	// parts that decoded; a part that did not is reported on its own.
	var orgProblems *ValidationError
	if orgErr == nil || errors.As(orgErr, &orgProblems) {
		var p Problems
		b.checkRefs(&p, decoded(tariffErr), templateErr == nil, ruleFile != "" && decoded(ruleErr))
		if p.Len() > 0 {
			if orgProblems == nil {
				orgProblems = &ValidationError{File: orgFile}
				orgErr = orgProblems
			}
			orgProblems.Problems = append(orgProblems.Problems, p.list...)
		}
	}
	var errs []error
	for _, err := range []error{orgErr, tariffErr, templateErr, ruleErr} {
		if err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return nil, joinErrors(errs)
	}
	return b, nil
}

// decoded reports whether a LoadFile result means the file was decoded,
// with or without validation problems.
func decoded(err error) bool {
	var ve *ValidationError
	return err == nil || errors.As(err, &ve)
}

// CheckRefs checks that every project's tariff, every device's template and
// every rule override exist, and that a device's kind matches its template's.
func (b *Bundle) CheckRefs(p *Problems) { b.checkRefs(p, true, true, true) }

func (b *Bundle) checkRefs(p *Problems, tariffs, templates, rules bool) {
	if templates && rules {
		b.checkInterlocks(p)
	}
	if rules {
		b.checkCommandRoles(p)
	}
	for ci, c := range b.Org.Companies {
		for pi, pr := range c.Projects {
			pp := Join(Join(Join("companies", ci), "projects"), pi)
			if tariffs && pr.Tariff != "" && b.Tariffs.Tariff(pr.Tariff) == nil {
				p.Addf(Join(pp, "tariff"), "unknown tariff %q", pr.Tariff)
			}
			for gi, g := range pr.Gateways {
				for di, d := range g.Devices {
					dp := Join(Join(Join(Join(pp, "gateways"), gi), "devices"), di)
					if !templates || d.Template == "" {
						continue
					}
					t := b.Templates[d.Template]
					if t == nil {
						p.Addf(Join(dp, "template"), "unknown template %q", d.Template)
					} else if t.Kind != d.Kind && d.Kind != KindOther && contains(DeviceKinds, d.Kind) {
						p.Addf(Join(dp, "kind"), "%q but template %q is for %q", d.Kind, d.Template, t.Kind)
					}
					if t != nil && d.MaxPowerKW != 0 && (t.Energy == nil || t.Energy.Counter == "") {
						p.Addf(Join(dp, "max_power_kw"), "template %q has no energy counter to apply it to", d.Template)
					}
				}
			}
			for gi, g := range pr.Groups {
				for ri, id := range g.Rules {
					r := b.Rules.Rule(id)
					rp := Join(Join(Join(Join(pp, "groups"), gi), "rules"), ri)
					switch {
					case !rules:
					case r == nil:
						p.Addf(rp, "unknown rule %q", id)
					case r.Kind != RuleThreshold && r.Kind != RuleState && r.Kind != RuleRate:
						p.Addf(rp, "rule %q is a %s rule; groups take threshold, state and rate rules", id, r.Kind)
					}
				}
			}
			for ri, ro := range pr.RuleOverrides {
				if rules && ro.Rule != "" && b.Rules.Rule(ro.Rule) == nil {
					p.Addf(Join(Join(Join(pp, "rule_overrides"), ri), "rule"), "unknown rule %q", ro.Rule)
				}
			}
		}
	}
}

// checkInterlocks checks that every point a rule interlocks is a writable
// point of some template the rule applies to (an interlock on a point
// nothing can write guards nothing: a typo).
func (b *Bundle) checkInterlocks(p *Problems) {
	ids := make([]string, 0, len(b.Templates))
	for id := range b.Templates {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for ri := range b.Rules.Rules {
		r := &b.Rules.Rules[ri]
		for ii, pt := range r.Interlocks {
			found := false
			for _, id := range ids {
				t := b.Templates[id]
				if r.Matches(t.Kind, t.ID) {
					if tp := t.WritePoint(pt); tp != nil && tp.Writable {
						found = true
						break
					}
				}
			}
			if !found {
				p.Addf(Join(Join(Join("rules", ri), "interlocks"), ii), "%q is not a writable point of any template rule %q applies to", pt, r.ID)
			}
		}
	}
}

type multiError []error

func (m multiError) Error() string {
	s := ""
	for i, e := range m {
		if i > 0 {
			s += "\n"
		}
		s += e.Error()
	}
	return s
}

func (m multiError) Unwrap() []error { return m }

func joinErrors(errs []error) error {
	if len(errs) == 1 {
		return errs[0]
	}
	return fmt.Errorf("cannot load configuration:\n%w", multiError(errs))
}

// checkCommandRoles checks that remote_control.roles names companies of
// the organisation.
func (b *Bundle) checkCommandRoles(p *Problems) {
	companies := make([]string, 0, len(b.Rules.RemoteControl.Roles))
	for c := range b.Rules.RemoteControl.Roles {
		companies = append(companies, c)
	}
	slices.Sort(companies)
	for _, c := range companies {
		if !slices.ContainsFunc(b.Org.Companies, func(co Company) bool { return co.ID == c }) {
			p.Addf(Join("remote_control.roles", c), "unknown company %q", c)
		}
	}
}
