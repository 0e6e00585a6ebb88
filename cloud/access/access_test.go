package access

import (
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/plantroom/plantroom/config"
)

var staff = map[string]Principal{
	"hq-admin":      {Staff: "hq-admin", Role: config.RoleHQAdmin, Company: "acme"},
	"hq-viewer":     {Staff: "hq-viewer", Role: config.RoleHQViewer, Company: "acme"},
	"pm-garden":     {Staff: "pm-garden", Role: config.RoleProjectManager, Company: "acme", Projects: []string{"garden"}},
	"pm-both":       {Staff: "pm-both", Role: config.RoleProjectManager, Company: "acme", Projects: []string{"garden", "tower"}},
	"tech-garden-1": {Staff: "tech-garden-1", Role: config.RoleTechnician, Company: "acme", Projects: []string{"garden"}},
	"tech-garden-2": {Staff: "tech-garden-2", Role: config.RoleTechnician, Company: "acme", Projects: []string{"garden"}},
	"tech-tower":    {Staff: "tech-tower", Role: config.RoleTechnician, Company: "acme", Projects: []string{"tower"}},
	"beta-admin":    {Staff: "beta-admin", Role: config.RoleHQAdmin, Company: "beta"},
	// A principal with a role the policy does not know sees nothing.
	"janitor": {Staff: "janitor", Role: "janitor", Company: "acme", Projects: []string{"garden"}},
	// A project manager whose project list names another company's project.
	"pm-confused": {Staff: "pm-confused", Role: config.RoleProjectManager, Company: "acme", Projects: []string{"harbour"}},
}

// Resources of the matrix: garden and tower belong to acme, harbour to beta.
var resources = map[string]Resource{
	"acme":                 {Kind: KindCompany, Company: "acme"},
	"garden":               {Kind: KindProject, Company: "acme", Project: "garden"},
	"garden-pump":          {Kind: KindDevice, Company: "acme", Project: "garden"},
	"tower-pump":           {Kind: KindDevice, Company: "acme", Project: "tower"},
	"harbour-pump":         {Kind: KindDevice, Company: "beta", Project: "harbour"},
	"garden-alarm":         {Kind: KindAlarm, Company: "acme", Project: "garden"},
	"tower-alarm":          {Kind: KindAlarm, Company: "acme", Project: "tower"},
	"garden-order-t1":      {Kind: KindWorkOrder, Company: "acme", Project: "garden", Assignee: "tech-garden-1"},
	"garden-order-pm":      {Kind: KindWorkOrder, Company: "acme", Project: "garden", Assignee: "pm-garden"},
	"garden-order-none":    {Kind: KindWorkOrder, Company: "acme", Project: "garden"},
	"garden-photo-t1":      {Kind: KindPhoto, Company: "acme", Project: "garden", Assignee: "tech-garden-1"},
	"garden-request-t1":    {Kind: KindRequest, Company: "acme", Project: "garden", Assignee: "tech-garden-1"},
	"garden-command":       {Kind: KindCommand, Company: "acme", Project: "garden"},
	"harbour-order-nobody": {Kind: KindWorkOrder, Company: "beta", Project: "harbour"},
	"no-company":           {Kind: KindProject, Project: "garden"},
}

// who may take each action on each resource, written out by hand from the
// table in the package documentation. Everyone not listed may not.
var matrix = map[Action]map[string][]string{
	View: {
		"acme":                 {"hq-admin", "hq-viewer"},
		"garden":               {"hq-admin", "hq-viewer", "pm-garden", "pm-both", "tech-garden-1", "tech-garden-2"},
		"garden-pump":          {"hq-admin", "hq-viewer", "pm-garden", "pm-both", "tech-garden-1", "tech-garden-2"},
		"tower-pump":           {"hq-admin", "hq-viewer", "pm-both", "tech-tower"},
		"harbour-pump":         {"beta-admin"},
		"garden-alarm":         {"hq-admin", "hq-viewer", "pm-garden", "pm-both", "tech-garden-1", "tech-garden-2"},
		"tower-alarm":          {"hq-admin", "hq-viewer", "pm-both", "tech-tower"},
		"garden-order-t1":      {"hq-admin", "hq-viewer", "pm-garden", "pm-both", "tech-garden-1"},
		"garden-order-pm":      {"hq-admin", "hq-viewer", "pm-garden", "pm-both"},
		"garden-order-none":    {"hq-admin", "hq-viewer", "pm-garden", "pm-both"},
		"garden-photo-t1":      {"hq-admin", "hq-viewer", "pm-garden", "pm-both", "tech-garden-1"},
		"garden-request-t1":    {"hq-admin", "hq-viewer", "pm-garden", "pm-both", "tech-garden-1"},
		"garden-command":       {"hq-admin", "hq-viewer", "pm-garden", "pm-both", "tech-garden-1", "tech-garden-2"},
		"harbour-order-nobody": {"beta-admin"},
	},
	Report: {
		"acme":         {"hq-admin", "hq-viewer"},
		"garden":       {"hq-admin", "hq-viewer", "pm-garden", "pm-both"},
		"garden-pump":  {"hq-admin", "hq-viewer", "pm-garden", "pm-both"},
		"tower-pump":   {"hq-admin", "hq-viewer", "pm-both"},
		"harbour-pump": {"beta-admin"},
		// reports are about projects and devices, but the policy does not
		// refuse a report "of" an alarm to someone who may read reports
		"garden-alarm":         {"hq-admin", "hq-viewer", "pm-garden", "pm-both"},
		"tower-alarm":          {"hq-admin", "hq-viewer", "pm-both"},
		"garden-order-t1":      {"hq-admin", "hq-viewer", "pm-garden", "pm-both"},
		"garden-order-pm":      {"hq-admin", "hq-viewer", "pm-garden", "pm-both"},
		"garden-order-none":    {"hq-admin", "hq-viewer", "pm-garden", "pm-both"},
		"garden-photo-t1":      {"hq-admin", "hq-viewer", "pm-garden", "pm-both"},
		"garden-request-t1":    {"hq-admin", "hq-viewer", "pm-garden", "pm-both"},
		"garden-command":       {"hq-admin", "hq-viewer", "pm-garden", "pm-both"},
		"harbour-order-nobody": {"beta-admin"},
	},
	Acknowledge: {
		"garden-alarm": {"hq-admin", "pm-garden", "pm-both", "tech-garden-1", "tech-garden-2"},
		"tower-alarm":  {"hq-admin", "pm-both", "tech-tower"},
	},
	Create: {
		"garden":               {"hq-admin", "pm-garden", "pm-both", "tech-garden-1", "tech-garden-2"},
		"garden-order-t1":      {"hq-admin", "pm-garden", "pm-both", "tech-garden-1"},
		"garden-order-pm":      {"hq-admin", "pm-garden", "pm-both"},
		"garden-order-none":    {"hq-admin", "pm-garden", "pm-both"},
		"harbour-order-nobody": {"beta-admin"},
	},
	Manage: {
		"acme":                 {"hq-admin"},
		"garden":               {"hq-admin", "pm-garden", "pm-both"},
		"garden-pump":          {"hq-admin", "pm-garden", "pm-both"},
		"tower-pump":           {"hq-admin", "pm-both"},
		"harbour-pump":         {"beta-admin"},
		"garden-alarm":         {"hq-admin", "pm-garden", "pm-both"},
		"tower-alarm":          {"hq-admin", "pm-both"},
		"garden-order-t1":      {"hq-admin", "pm-garden", "pm-both"},
		"garden-order-pm":      {"hq-admin", "pm-garden", "pm-both"},
		"garden-order-none":    {"hq-admin", "pm-garden", "pm-both"},
		"garden-photo-t1":      {"hq-admin", "pm-garden", "pm-both"},
		"garden-request-t1":    {"hq-admin", "pm-garden", "pm-both"},
		"garden-command":       {"hq-admin", "pm-garden", "pm-both"},
		"harbour-order-nobody": {"beta-admin"},
	},
	Work: {
		"garden-order-t1":   {"tech-garden-1"},
		"garden-order-pm":   {"pm-garden"},
		"garden-photo-t1":   {"tech-garden-1"},
		"garden-request-t1": {"tech-garden-1"},
	},
	Transition: {
		"garden-order-t1":      {"hq-admin", "pm-garden", "pm-both", "tech-garden-1"},
		"garden-order-pm":      {"hq-admin", "pm-garden", "pm-both"},
		"garden-order-none":    {"hq-admin", "pm-garden", "pm-both"},
		"harbour-order-nobody": {"beta-admin"},
	},
	Contact: {
		"garden-request-t1": {"pm-garden", "pm-both", "tech-garden-1"},
	},
	Command: {
		"garden-pump": {"pm-garden", "pm-both", "tech-garden-1", "tech-garden-2"},
		"tower-pump":  {"pm-both", "tech-tower"},
	},
}

// TestMatrix asks the policy every (staff, action, resource) question and
// compares with the hand-written matrix.
func TestMatrix(t *testing.T) {
	if len(matrix) != len(Actions) {
		t.Fatalf("matrix covers %d actions, the policy has %d", len(matrix), len(Actions))
	}
	for _, a := range Actions {
		for rname, r := range resources {
			for sname, p := range staff {
				want := slices.Contains(matrix[a][rname], sname)
				if got := p.May(a, r); got != want {
					t.Errorf("%s may %s %s: %v, want %v", sname, a, rname, got, want)
				}
				err := p.Check(a, r)
				switch {
				case want && err != nil:
					t.Errorf("Check(%s, %s, %s) = %v, want nil", sname, a, rname, err)
				case !want && !p.Sees(r) && err != ErrNotVisible:
					t.Errorf("Check(%s, %s, %s) = %v, want ErrNotVisible", sname, a, rname, err)
				case !want && p.Sees(r) && err != ErrForbidden:
					t.Errorf("Check(%s, %s, %s) = %v, want ErrForbidden", sname, a, rname, err)
				}
			}
		}
	}
	for a, byRes := range matrix {
		for rname, who := range byRes {
			if _, ok := resources[rname]; !ok {
				t.Errorf("matrix[%s] names unknown resource %q", a, rname)
			}
			for _, s := range who {
				if _, ok := staff[s]; !ok {
					t.Errorf("matrix[%s][%s] names unknown staff %q", a, rname, s)
				}
			}
		}
	}
}

// TestSeesIsView: Sees and May(View) are the same question.
func TestSeesIsView(t *testing.T) {
	for rname, r := range resources {
		for sname, p := range staff {
			if p.Sees(r) != p.May(View, r) {
				t.Errorf("%s on %s: Sees %v, May(View) %v", sname, rname, p.Sees(r), p.May(View, r))
			}
		}
	}
}

// TestRoleMay: a role may take an action on some resource exactly when
// RoleMay says so (checked over a universe of every kind and assignee).
func TestRoleMay(t *testing.T) {
	for _, role := range append(slices.Clone(config.Roles), "janitor") {
		p := Principal{Staff: "me", Role: role, Company: "acme", Projects: []string{"garden"}}
		for _, a := range Actions {
			some := false
			for _, k := range Kinds {
				for _, assignee := range []string{"", "me", "someone"} {
					for _, project := range []string{"", "garden"} {
						if p.May(a, Resource{Kind: k, Company: "acme", Project: project, Assignee: assignee}) {
							some = true
						}
					}
				}
			}
			if got := RoleMay(role, a); got != some {
				t.Errorf("RoleMay(%s, %s) = %v, but some resource allows it: %v", role, a, got, some)
			}
		}
	}
}

// TestDocumentedTable: every action and kind appears in the package
// documentation's table, so the table stays the whole rule.
func TestDocumentedTable(t *testing.T) {
	doc := docComment(t)
	for _, a := range Actions {
		name := strings.ToUpper(string(a[:1])) + string(a[1:])
		if !strings.Contains(doc, "//\t"+name+" ") {
			t.Errorf("action %s has no row in the package documentation's table", a)
		}
	}
}

func docComment(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("access.go")
	if err != nil {
		t.Fatal(err)
	}
	doc, _, _ := strings.Cut(string(b), "\npackage access")
	return doc
}

// TestCommandRolesPerCompany: a company's rules file may say who commands
// its devices (config.RemoteControl, carried as Principal.CommandRoles).
// acme lets its HQ admins and project managers command, not its
// technicians; beta keeps the default. Written out by hand: who may
// command which device, everyone else may not.
func TestCommandRolesPerCompany(t *testing.T) {
	acme := []string{config.RoleHQAdmin, config.RoleProjectManager}
	with := func(name string) Principal {
		p := staff[name]
		if p.Company == "acme" {
			p.CommandRoles = acme
		}
		return p
	}
	want := map[string][]string{
		"garden-pump":  {"hq-admin", "pm-garden", "pm-both"},
		"tower-pump":   {"hq-admin", "pm-both"},
		"harbour-pump": {}, // beta's default: its HQ admin may not
	}
	for res, who := range want {
		for name := range staff {
			got := with(name).May(Command, resources[res])
			if got != slices.Contains(who, name) {
				t.Errorf("%s may command %s: %v, want %v", name, res, got, !got)
			}
		}
	}
	// Only devices are commanded, whatever the configuration.
	for _, res := range []string{"garden", "garden-alarm", "garden-command"} {
		if with("hq-admin").May(Command, resources[res]) {
			t.Errorf("hq-admin may command %s", res)
		}
	}
	// hq_viewer is read-only even where a configuration lists it (the
	// rules file refuses such a list; the policy holds anyway).
	v := staff["hq-viewer"]
	v.CommandRoles = []string{config.RoleHQViewer, config.RoleHQAdmin}
	if v.May(Command, resources["garden-pump"]) {
		t.Error("hq-viewer may command when a configuration lists its role")
	}
	// The default, spelled out: no CommandRoles is DefaultCommandRoles.
	for name, p := range staff {
		got := p.May(Command, resources["garden-pump"])
		if wantDefault := slices.Contains([]string{"pm-garden", "pm-both", "tech-garden-1", "tech-garden-2"}, name); got != wantDefault {
			t.Errorf("default: %s may command garden-pump: %v, want %v", name, got, wantDefault)
		}
	}
	// Check tells "not visible" from "not allowed".
	if err := with("tech-garden-1").Check(Command, resources["garden-pump"]); err != ErrForbidden {
		t.Errorf("tech-garden-1 under acme's roles: %v, want ErrForbidden", err)
	}
	if err := with("hq-admin").Check(Command, resources["harbour-pump"]); err != ErrNotVisible {
		t.Errorf("acme's hq-admin on beta's pump: %v, want ErrNotVisible", err)
	}
}

// A principal's scope over a kind holds every resource of that kind the
// principal sees, and none it does not (where the scope can say so: its
// company, projects and assignee).
func TestScopeOfAgreesWithSees(t *testing.T) {
	in := func(s Scope, r Resource) bool {
		return !s.None && r.Company == s.Company && (s.Projects == nil || slices.Contains(s.Projects, r.Project)) &&
			(s.Assignee == "" || r.Assignee == s.Assignee)
	}
	for pn, p := range staff {
		for rn, r := range resources {
			if r.Project == "" || r.Kind == KindCompany {
				continue // not a per-project resource
			}
			s := p.ScopeOf(r.Kind)
			if got, want := in(s, r), p.Sees(r); got != want {
				t.Errorf("%s / %s: in scope %+v = %v, Sees = %v", pn, rn, s, got, want)
			}
		}
	}
}
