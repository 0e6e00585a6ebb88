package workorder

import (
	"slices"
	"sort"
	"time"

	"github.com/plantroom/plantroom/config"
)

// roster answers who works where: technicians with their skills and shifts,
// managers, HQ admins.
type roster struct {
	staff []config.Staff
}

func newRoster(org *config.Org) *roster {
	s := slices.Clone(org.Staff)
	sort.Slice(s, func(i, j int) bool { return s[i].ID < s[j].ID })
	return &roster{staff: s}
}

func (r *roster) find(id string) *config.Staff {
	for i := range r.staff {
		if r.staff[i].ID == id {
			return &r.staff[i]
		}
	}
	return nil
}

// onDuty reports whether s has a shift covering t in the project's zone.
func onDuty(s *config.Staff, t time.Time, loc *time.Location) bool {
	if loc == nil {
		loc = time.UTC
	}
	lt := t.In(loc)
	for _, sh := range s.OnDuty {
		if sh.OnDutyAt(lt) {
			return true
		}
	}
	return false
}

// pick chooses the assignee of an order of project p needing skill at time
// t: the on-duty technician of the project with the skill and the fewest
// open orders (ties by staff id); without one, the project's manager with
// the fewest open orders; without one, the company's HQ admin. It returns
// "" when there is nobody, and why it chose as it did.
func (r *roster) pick(company string, p *config.Project, skill string, t time.Time, load func(staff string) int) (string, string) {
	best := func(ok func(s *config.Staff) bool) string {
		id, n := "", 0
		for i := range r.staff {
			s := &r.staff[i]
			if s.Company != company || !ok(s) {
				continue
			}
			if l := load(s.ID); id == "" || l < n {
				id, n = s.ID, l
			}
		}
		return id
	}
	inProject := func(s *config.Staff) bool { return slices.Contains(s.Projects, p.ID) }
	if id := best(func(s *config.Staff) bool {
		return s.Role == config.RoleTechnician && inProject(s) &&
			(skill == "" || slices.Contains(s.Skills, skill)) && onDuty(s, t, p.Location)
	}); id != "" {
		return id, "on-duty technician"
	}
	if id := best(func(s *config.Staff) bool { return s.Role == config.RoleProjectManager && inProject(s) }); id != "" {
		return id, "no technician with skill " + quoteSkill(skill) + " on duty: project manager"
	}
	if id := best(func(s *config.Staff) bool { return s.Role == config.RoleHQAdmin }); id != "" {
		return id, "no technician on duty and no project manager: HQ"
	}
	return "", "nobody to assign"
}

func quoteSkill(s string) string {
	if s == "" {
		return "(any)"
	}
	return "\"" + s + "\""
}

// canBeAssigned reports whether staff s may take orders of project p.
func canBeAssigned(s *config.Staff, company, project string) bool {
	if s == nil || s.Company != company {
		return false
	}
	switch s.Role {
	case config.RoleHQAdmin:
		return true
	case config.RoleTechnician, config.RoleProjectManager:
		return slices.Contains(s.Projects, project)
	}
	return false
}

// slaDue is when someone must be on site for an order raised at t: t+sla,
// or with workingDay the start of the next working day of cal in loc.
func slaDue(t time.Time, sla time.Duration, workingDay bool, cal *config.WorkOrderSettings, loc *time.Location) time.Time {
	if workingDay {
		return cal.NextWorkingDayStart(t, loc).UTC()
	}
	return t.Add(sla).UTC()
}
