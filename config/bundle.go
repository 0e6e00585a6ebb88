package config

import "fmt"

// Bundle is the cloud's view of the organisation: the org file with the
// templates, tariffs and rules it refers to.
type Bundle struct {
	Org       Org
	Tariffs   TariffFile
	Templates Templates
	Rules     RuleFile
}

// LoadBundle loads the four parts and checks the references between them.
// Every problem of every file is reported.
func LoadBundle(orgFile, tariffFile, templateDir, ruleFile string) (*Bundle, error) {
	b := &Bundle{}
	var errs []error
	if err := LoadFile(orgFile, &b.Org); err != nil {
		errs = append(errs, err)
	}
	if err := LoadFile(tariffFile, &b.Tariffs); err != nil {
		errs = append(errs, err)
	}
	ts, err := LoadTemplates(templateDir)
	if err != nil {
		errs = append(errs, err)
	}
	b.Templates = ts
	if ruleFile != "" {
		if err := LoadFile(ruleFile, &b.Rules); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return nil, joinErrors(errs)
	}
	var p Problems
	b.CheckRefs(&p)
	if err := p.Err(); err != nil {
		err.(*ValidationError).File = orgFile
		return nil, err
	}
	return b, nil
}

// CheckRefs checks that every project's tariff, every device's template and
// every rule override exist, and that a device's kind matches its template's.
func (b *Bundle) CheckRefs(p *Problems) {
	for ci, c := range b.Org.Companies {
		for pi, pr := range c.Projects {
			pp := Join(Join(Join("companies", ci), "projects"), pi)
			if pr.Tariff != "" && b.Tariffs.Tariff(pr.Tariff) == nil {
				p.Addf(Join(pp, "tariff"), "unknown tariff %q", pr.Tariff)
			}
			for gi, g := range pr.Gateways {
				for di, d := range g.Devices {
					dp := Join(Join(Join(Join(pp, "gateways"), gi), "devices"), di)
					t := b.Templates[d.Template]
					if t == nil {
						p.Addf(Join(dp, "template"), "unknown template %q", d.Template)
					} else if t.Kind != d.Kind && d.Kind != KindOther {
						p.Addf(Join(dp, "kind"), "%q but template %q is for %q", d.Kind, d.Template, t.Kind)
					}
				}
			}
			for ri, ro := range pr.RuleOverrides {
				if ro.Rule != "" && b.Rules.Rule(ro.Rule) == nil {
					p.Addf(Join(Join(Join(pp, "rule_overrides"), ri), "rule"), "unknown rule %q", ro.Rule)
				}
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
