package config

import (
	"math"
	"slices"
	"strings"
	"time"

	"github.com/plantroom/plantroom/protocol"
)

// Device kinds. Reports group energy by these categories (meter and other
// fall under "other").
const (
	KindElevator = "elevator"
	KindPump     = "pump"
	KindLighting = "lighting"
	KindMeter    = "meter"
	KindOther    = "other"
)

// DeviceKinds lists every valid device kind.
var DeviceKinds = []string{KindElevator, KindPump, KindLighting, KindMeter, KindOther}

// Staff roles.
const (
	RoleHQAdmin        = "hq_admin"
	RoleHQViewer       = "hq_viewer"
	RoleProjectManager = "project_manager"
	RoleTechnician     = "technician"
)

// Roles lists every valid role.
var Roles = []string{RoleHQAdmin, RoleHQViewer, RoleProjectManager, RoleTechnician}

// Org is the organisation file: who exists, where, with which equipment.
type Org struct {
	Companies []Company `yaml:"companies"`
	Staff     []Staff   `yaml:"staff"`
}

// Company is a tenant. No company sees another's data.
type Company struct {
	ID       string    `yaml:"id"`
	Name     string    `yaml:"name"`
	Projects []Project `yaml:"projects"`
}

// Project is a residential community or office park with one or more
// buildings and plant rooms.
type Project struct {
	ID            string         `yaml:"id"`
	Name          string         `yaml:"name"`
	TimeZone      string         `yaml:"time_zone"`
	FloorAreaM2   float64        `yaml:"floor_area_m2"`
	Tariff        string         `yaml:"tariff"`
	Buildings     []Building     `yaml:"buildings"`
	Gateways      []Gateway      `yaml:"gateways"`
	RuleOverrides []RuleOverride `yaml:"rule_overrides"`
	Webhooks      []Webhook      `yaml:"webhooks"`
	// Groups are devices that share one measurement (a duty/standby pump
	// set on one header, a riser): the group's rules raise one alarm for
	// the group instead of one per device.
	Groups []DeviceGroup `yaml:"groups"`

	Location *time.Location `yaml:"-"` // set by validation from TimeZone
}

// Building is one building of a project.
type Building struct {
	ID          string  `yaml:"id"`
	Name        string  `yaml:"name"`
	FloorAreaM2 float64 `yaml:"floor_area_m2"`
}

// Gateway is one edge box. The cloud keeps only a hash of its password.
type Gateway struct {
	ID           string   `yaml:"id"`
	Name         string   `yaml:"name"`
	Building     string   `yaml:"building"`
	PasswordHash string   `yaml:"password_hash"` // bcrypt ("$2a$…")
	Devices      []Device `yaml:"devices"`
}

// Device is one piece of equipment read by a gateway.
type Device struct {
	ID       string `yaml:"id"`
	Name     string `yaml:"name"`
	Kind     string `yaml:"kind"`
	Template string `yaml:"template"`
	Building string `yaml:"building"`
	Address  string `yaml:"address"` // where the gateway reaches it: "tcp://host:port", "rtu:///dev/ttyUSB0", "mqtt:<topic>"
	UnitID   int    `yaml:"unit_id"`
	// PollInterval is the expected interval between readings; used for stale
	// detection and data completeness. Default 10s.
	PollInterval Duration `yaml:"poll_interval"`
	// MaxPowerKW overrides the template's energy.max_power_kw for this
	// device (0: the template's).
	MaxPowerKW float64 `yaml:"max_power_kw"`
}

// Webhook is an outgoing notification target of a project.
type Webhook struct {
	URL    string `yaml:"url"`
	Secret string `yaml:"secret"`
	Format string `yaml:"format"` // "json" (default), "wecom", "dingtalk"
}

// DeviceGroup is a set of devices of one project sharing a measurement.
// Each of Rules is evaluated once for the group, on the readings of every
// member, and replaces the members' own alarms of that rule.
type DeviceGroup struct {
	ID      string   `yaml:"id"`
	Name    string   `yaml:"name"`
	Devices []string `yaml:"devices"`
	Rules   []string `yaml:"rules"`
}

// RuleOverride changes an alarm rule for one project, or one device of it.
type RuleOverride struct {
	Rule     string    `yaml:"rule"`
	Device   string    `yaml:"device"`
	Above    *float64  `yaml:"above"`
	Below    *float64  `yaml:"below"`
	For      *Duration `yaml:"for"`
	Disabled bool      `yaml:"disabled"`
}

// DefaultPollInterval applies where a device sets none.
const DefaultPollInterval = 10 * time.Second

// Validate checks the organisation on its own; CheckRefs checks its
// references to templates, tariffs and rules.
func (o *Org) Validate(p *Problems) {
	companies := map[string]bool{}
	projects := map[string]string{} // project id → company id
	devices := map[string]string{}
	gateways := map[string]string{}
	for ci := range o.Companies {
		c := &o.Companies[ci]
		cp := Join("companies", ci)
		checkID(p, Join(cp, "id"), c.ID)
		if companies[c.ID] {
			p.Addf(Join(cp, "id"), "duplicate company id %q", c.ID)
		}
		companies[c.ID] = true
		if strings.TrimSpace(c.Name) == "" {
			p.Addf(Join(cp, "name"), "required")
		}
		for pi := range c.Projects {
			pr := &c.Projects[pi]
			pp := Join(Join(cp, "projects"), pi)
			checkID(p, Join(pp, "id"), pr.ID)
			if other, dup := projects[pr.ID]; dup {
				p.Addf(Join(pp, "id"), "duplicate project id %q (also in company %q)", pr.ID, other)
			}
			projects[pr.ID] = c.ID
			if strings.TrimSpace(pr.Name) == "" {
				p.Addf(Join(pp, "name"), "required")
			}
			if pr.TimeZone == "" {
				p.Addf(Join(pp, "time_zone"), "required (an IANA name such as \"Asia/Shanghai\")")
			} else if loc, err := time.LoadLocation(pr.TimeZone); err != nil || pr.TimeZone == "Local" {
				p.Addf(Join(pp, "time_zone"), "unknown time zone %q", pr.TimeZone)
			} else {
				pr.Location = loc
			}
			if pr.FloorAreaM2 <= 0 {
				p.Addf(Join(pp, "floor_area_m2"), "must be > 0, got %v", pr.FloorAreaM2)
			}
			if pr.Tariff == "" {
				p.Addf(Join(pp, "tariff"), "required")
			}
			buildings := map[string]bool{}
			for bi, b := range pr.Buildings {
				bp := Join(Join(pp, "buildings"), bi)
				checkID(p, Join(bp, "id"), b.ID)
				if buildings[b.ID] {
					p.Addf(Join(bp, "id"), "duplicate building id %q", b.ID)
				}
				buildings[b.ID] = true
				if b.FloorAreaM2 < 0 {
					p.Addf(Join(bp, "floor_area_m2"), "must be >= 0, got %v", b.FloorAreaM2)
				}
			}
			for gi := range pr.Gateways {
				g := &pr.Gateways[gi]
				gp := Join(Join(pp, "gateways"), gi)
				checkID(p, Join(gp, "id"), g.ID)
				if other, dup := gateways[g.ID]; dup {
					p.Addf(Join(gp, "id"), "duplicate gateway id %q (also in project %q)", g.ID, other)
				}
				gateways[g.ID] = pr.ID
				if g.Building != "" && !buildings[g.Building] {
					p.Addf(Join(gp, "building"), "unknown building %q in project %q", g.Building, pr.ID)
				}
				if !strings.HasPrefix(g.PasswordHash, "$2") {
					p.Addf(Join(gp, "password_hash"), "must be a bcrypt hash (\"$2a$…\"); make one with `bin/cloud hash-password`")
				}
				for di := range g.Devices {
					d := &g.Devices[di]
					dp := Join(Join(gp, "devices"), di)
					checkID(p, Join(dp, "id"), d.ID)
					if other, dup := devices[d.ID]; dup {
						p.Addf(Join(dp, "id"), "duplicate device id %q (also on gateway %q)", d.ID, other)
					}
					devices[d.ID] = g.ID
					if !contains(DeviceKinds, d.Kind) {
						p.Addf(Join(dp, "kind"), "unknown kind %q (want one of %s)", d.Kind, strings.Join(DeviceKinds, ", "))
					}
					if d.Template == "" {
						p.Addf(Join(dp, "template"), "required")
					}
					if d.Building == "" {
						d.Building = g.Building
					}
					if d.Building != "" && !buildings[d.Building] {
						p.Addf(Join(dp, "building"), "unknown building %q in project %q", d.Building, pr.ID)
					}
					if d.MaxPowerKW < 0 || math.IsNaN(d.MaxPowerKW) || math.IsInf(d.MaxPowerKW, 0) {
						p.Addf(Join(dp, "max_power_kw"), "must be a number > 0, got %v", d.MaxPowerKW)
					}
					if d.PollInterval.Duration == 0 {
						d.PollInterval = D(DefaultPollInterval)
					} else if d.PollInterval.Duration < 100*time.Millisecond {
						p.Addf(Join(dp, "poll_interval"), "must be at least 100ms, got %s", d.PollInterval)
					}
				}
			}
			for wi, w := range pr.Webhooks {
				wp := Join(Join(pp, "webhooks"), wi)
				if !strings.HasPrefix(w.URL, "http://") && !strings.HasPrefix(w.URL, "https://") {
					p.Addf(Join(wp, "url"), "must be an http(s) URL, got %q", w.URL)
				}
				switch w.Format {
				case "", "json", "wecom", "dingtalk":
				default:
					p.Addf(Join(wp, "format"), "unknown format %q (want json, wecom or dingtalk)", w.Format)
				}
			}
			for gi, g := range pr.Groups {
				gp := Join(Join(pp, "groups"), gi)
				checkID(p, Join(gp, "id"), g.ID)
				if _, ok := devices[g.ID]; ok {
					p.Addf(Join(gp, "id"), "%q is a device id", g.ID)
				}
				if len(g.Devices) < 2 {
					p.Addf(Join(gp, "devices"), "a group needs at least two devices")
				}
				if len(g.Rules) == 0 {
					p.Addf(Join(gp, "rules"), "required: the rules evaluated for the group")
				}
				for di, d := range g.Devices {
					if gw, ok := devices[d]; !ok {
						p.Addf(Join(Join(gp, "devices"), di), "unknown device %q", d)
					} else if other := gateways[gw]; other != pr.ID {
						p.Addf(Join(Join(gp, "devices"), di), "device %q belongs to project %q, not %q", d, other, pr.ID)
					}
				}
			}
			for ri, ro := range pr.RuleOverrides {
				rp := Join(Join(pp, "rule_overrides"), ri)
				if ro.Rule == "" {
					p.Addf(Join(rp, "rule"), "required")
				}
				if ro.Device != "" && !slices.ContainsFunc(pr.Groups, func(g DeviceGroup) bool { return g.ID == ro.Device }) {
					if gw, ok := devices[ro.Device]; !ok {
						p.Addf(Join(rp, "device"), "unknown device %q", ro.Device)
					} else if other := gateways[gw]; other != pr.ID {
						p.Addf(Join(rp, "device"), "device %q belongs to project %q, not %q", ro.Device, other, pr.ID)
					}
				}
			}
		}
	}
	tokens := map[string]string{}
	ids := map[string]bool{}
	for si := range o.Staff {
		s := &o.Staff[si]
		sp := Join("staff", si)
		checkID(p, Join(sp, "id"), s.ID)
		if ids[s.ID] {
			p.Addf(Join(sp, "id"), "duplicate staff id %q", s.ID)
		}
		ids[s.ID] = true
		if !companies[s.Company] {
			p.Addf(Join(sp, "company"), "unknown company %q", s.Company)
		}
		if !contains(Roles, s.Role) {
			p.Addf(Join(sp, "role"), "unknown role %q (want one of %s)", s.Role, strings.Join(Roles, ", "))
		}
		if (s.Role == RoleProjectManager || s.Role == RoleTechnician) && len(s.Projects) == 0 {
			p.Addf(Join(sp, "projects"), "a %s needs at least one project", s.Role)
		}
		for pi, pid := range s.Projects {
			if c, ok := projects[pid]; !ok {
				p.Addf(Join(Join(sp, "projects"), pi), "unknown project %q", pid)
			} else if c != s.Company {
				p.Addf(Join(Join(sp, "projects"), pi), "project %q belongs to company %q, not %q", pid, c, s.Company)
			}
		}
		if err := checkTokenHash(s.TokenHash); err != nil {
			p.Add(Join(sp, "token_hash"), err)
		} else if other, dup := tokens[s.TokenHash]; dup {
			p.Addf(Join(sp, "token_hash"), "same token as staff %q", other)
		}
		tokens[s.TokenHash] = s.ID
		if s.PasswordHash != "" && !strings.HasPrefix(s.PasswordHash, "$2") {
			p.Addf(Join(sp, "password_hash"), "must be a bcrypt hash (\"$2a$…\"); make one with `bin/cloud hash-password`")
		}
		for shi, sh := range s.OnDuty {
			shp := Join(Join(sp, "on_duty"), shi)
			if len(sh.Days) == 0 {
				p.Addf(Join(shp, "days"), "required")
			}
			for di, d := range sh.Days {
				if _, ok := weekdays[d]; !ok {
					p.Addf(Join(Join(shp, "days"), di), "unknown day %q (want mon … sun)", d)
				}
			}
			if _, err := ParseClock(sh.From); err != nil {
				p.Add(Join(shp, "from"), err)
			}
			if _, err := ParseClock(sh.To); err != nil {
				p.Add(Join(shp, "to"), err)
			}
		}
	}
}

func checkID(p *Problems, path, id string) {
	if err := protocol.CheckID(id); err != nil {
		p.Add(path, err)
	}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// GatewayInfo locates a gateway in the organisation.
type GatewayInfo struct {
	Company *Company
	Project *Project
	Gateway *Gateway
}

// Ref is the gateway's topic identity.
func (g GatewayInfo) Ref() protocol.GatewayRef {
	return protocol.GatewayRef{Company: g.Company.ID, Project: g.Project.ID, Gateway: g.Gateway.ID}
}

// DeviceInfo locates a device in the organisation.
type DeviceInfo struct {
	GatewayInfo
	Device *Device
}

// FindGateway returns the gateway with the given id.
func (o *Org) FindGateway(id string) (GatewayInfo, bool) {
	for ci := range o.Companies {
		c := &o.Companies[ci]
		for pi := range c.Projects {
			pr := &c.Projects[pi]
			for gi := range pr.Gateways {
				if pr.Gateways[gi].ID == id {
					return GatewayInfo{c, pr, &pr.Gateways[gi]}, true
				}
			}
		}
	}
	return GatewayInfo{}, false
}

// Devices returns every device of the organisation with its location.
func (o *Org) Devices() []DeviceInfo {
	var out []DeviceInfo
	for ci := range o.Companies {
		c := &o.Companies[ci]
		for pi := range c.Projects {
			pr := &c.Projects[pi]
			for gi := range pr.Gateways {
				g := &pr.Gateways[gi]
				for di := range g.Devices {
					out = append(out, DeviceInfo{GatewayInfo{c, pr, g}, &g.Devices[di]})
				}
			}
		}
	}
	return out
}

// FindCompany returns the company with the given id.
func (o *Org) FindCompany(id string) (*Company, bool) {
	for ci := range o.Companies {
		if o.Companies[ci].ID == id {
			return &o.Companies[ci], true
		}
	}
	return nil, false
}

// Month returns the bounds [from, to) of month m of year y in the
// project's time zone (UTC before validation has set it).
func (p *Project) Month(y int, m time.Month) (from, to time.Time) {
	loc := p.Location
	if loc == nil {
		loc = time.UTC
	}
	from = time.Date(y, m, 1, 0, 0, 0, 0, loc)
	return from, from.AddDate(0, 1, 0)
}

// FindProject returns the project with the given id and its company.
func (o *Org) FindProject(id string) (*Company, *Project, bool) {
	for ci := range o.Companies {
		c := &o.Companies[ci]
		for pi := range c.Projects {
			if c.Projects[pi].ID == id {
				return c, &c.Projects[pi], true
			}
		}
	}
	return nil, nil, false
}
