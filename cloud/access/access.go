// Package access is the cloud's one access policy: who may see and do what.
// The API's route scopes, the alarm feed, the work-order desk and the
// console all ask it; no other package decides visibility or permission.
//
// A Principal (an authenticated staff member) may take an Action on a
// Resource when the resource is visible to them and the table allows it:
//
//	action       resource                        hq_admin  hq_viewer  project_manager  technician
//	-----------  ------------------------------  --------  ---------  ---------------  ----------------
//	View         company-wide (reports, stats)   yes       yes        no               no
//	View         project, device, alarm          all       all        own projects     own projects
//	View         work order, photo, request      all       all        own projects     assigned to them
//	View         command                         all       all        own projects     own projects
//	Report       project energy, statistics      yes       yes        own projects     no
//	Acknowledge  alarm                           yes       no         own projects     own projects
//	Create       work order (manual)             yes       no         own projects     own projects
//	Manage       work order, request, project    yes       no         own projects     no
//	Work         work order (and its photos)     assignee  no         assignee         assignee
//	Transition   work order                      Manage or Work, whichever the step is
//	Contact      resident request's phone        no        no         own projects     assigned to them
//	Command      device                          no (*)    no         own projects     own projects (*)
//
// Besides the table:
//   - never across companies: a principal sees nothing of another company;
//   - "all" means every project of the principal's own company; a
//     company-wide resource (Project "") is visible to HQ roles only;
//   - a work order (and a photo or resident request, which belong to an
//     order) is visible to a technician only while it is assigned to them.
//     An unassigned order (Assignee "") is not visible to any technician:
//     the project manager dispatches it. This settles the one disagreement
//     the four former copies of the rule had (a nil assignee list);
//   - hq_viewer is read-only: View and Report only;
//   - Manage on a work order is assign, reassign, send resolved work back,
//     close and cancel; Work is accept, start, resolve and attaching photos,
//     for whoever the order is assigned to (lifecycle rules, which states
//     may follow which, live in the workorder package);
//   - Command: by default HQ roles may not write to equipment, only the
//     project's own manager and technicians may. (*) A company may say
//     otherwise in the rules file (config.RemoteControl: remote_control.roles,
//     carried by the principal as CommandRoles): the roles it lists may
//     command the devices they see (hq_admin every project of the company),
//     the others may not. hq_viewer never may, whatever the file says.
//
// Callers answer a resource that is not visible exactly like one that
// does not exist (404), and a visible one whose action is not allowed with
// 403 (see Check).
package access

import (
	"errors"
	"slices"

	"github.com/plantroom/plantroom/config"
)

// Kind is the kind of a resource.
type Kind string

// Resource kinds.
const (
	KindCompany   Kind = "company"   // company-wide: HQ reports, statistics
	KindProject   Kind = "project"   // a project and what has no finer rule
	KindDevice    Kind = "device"    // a device, its readings and history
	KindAlarm     Kind = "alarm"     // an alarm
	KindWorkOrder Kind = "workorder" // a work order
	KindPhoto     Kind = "photo"     // a photo attached to a work order
	KindRequest   Kind = "request"   // a resident's repair request (a work order's origin)
	KindCommand   Kind = "command"   // a command written to a device
)

// Kinds lists every resource kind.
var Kinds = []Kind{KindCompany, KindProject, KindDevice, KindAlarm, KindWorkOrder, KindPhoto, KindRequest, KindCommand}

// Action is what a principal does with a resource.
type Action string

// Actions. See the package documentation for who may take which.
const (
	View        Action = "view"        // read the resource
	Report      Action = "report"      // read energy reports and statistics
	Acknowledge Action = "acknowledge" // acknowledge an alarm
	Create      Action = "create"      // open a manual work order in a project
	Manage      Action = "manage"      // assign, reassign, send back, close, cancel; rotate links
	Work        Action = "work"        // accept, start, resolve; attach photos
	Transition  Action = "transition"  // move a work order a step: Manage or Work
	Contact     Action = "contact"     // read a resident's contact details
	Command     Action = "command"     // write to a device
)

// Actions lists every action.
var Actions = []Action{View, Report, Acknowledge, Create, Manage, Work, Transition, Contact, Command}

// Errors for callers that return rather than answer HTTP.
var (
	// ErrNotVisible: the resource is not visible (answer it like "not found").
	ErrNotVisible = errors.New("not visible")
	// ErrForbidden: the resource is visible, the action is not allowed.
	ErrForbidden = errors.New("not allowed")
)

// Principal is an authenticated staff member.
type Principal struct {
	Staff   string
	Name    string
	Role    string
	Company string
	// Projects are the projects of a project manager or technician; HQ roles
	// have every project of their company and list none.
	Projects []string
	// CommandRoles are the roles the principal's company lets command
	// devices (config.RuleFile.CommandRoles); nil: DefaultCommandRoles.
	CommandRoles []string
}

// DefaultCommandRoles may command their projects' devices unless their
// company's configuration lists others.
var DefaultCommandRoles = []string{config.RoleProjectManager, config.RoleTechnician}

// commands reports whether the principal's role may command devices at
// all (which devices: those it sees).
func (p Principal) commands() bool {
	if p.Role == config.RoleHQViewer { // read-only, whatever the configuration says
		return false
	}
	roles := p.CommandRoles
	if roles == nil {
		roles = DefaultCommandRoles
	}
	return slices.Contains(roles, p.Role)
}

// Resource says where something belongs, which decides who may see it.
type Resource struct {
	Kind    Kind
	Company string
	Project string // "" for a company-wide resource: HQ roles only
	// Assignee is the staff member a work order (or the photo or resident
	// request it carries) is assigned to; "" when unassigned.
	Assignee string
}

// ProjectOf is the resource of a whole project.
func ProjectOf(company, project string) Resource {
	return Resource{Kind: KindProject, Company: company, Project: project}
}

// HQ reports whether the principal has an HQ role.
func (p Principal) HQ() bool { return p.Role == config.RoleHQAdmin || p.Role == config.RoleHQViewer }

// assigned reports whether the principal is r's assignee.
func (p Principal) assigned(r Resource) bool { return r.Assignee != "" && r.Assignee == p.Staff }

// onProject reports whether the principal works on project (HQ: every
// project of the company).
func (p Principal) onProject(project string) bool {
	return p.HQ() || project != "" && slices.Contains(p.Projects, project)
}

// Sees reports whether r is visible to the principal.
func (p Principal) Sees(r Resource) bool {
	if r.Company == "" || r.Company != p.Company || !slices.Contains(config.Roles, p.Role) {
		return false
	}
	if r.Project == "" || r.Kind == KindCompany {
		return p.HQ()
	}
	if !p.onProject(r.Project) {
		return false
	}
	if p.Role == config.RoleTechnician && perOrder(r.Kind) {
		return p.assigned(r)
	}
	return true
}

// SeesProject reports whether project of company is visible to the principal.
func (p Principal) SeesProject(company, project string) bool {
	return p.Sees(ProjectOf(company, project))
}

// perOrder reports whether resources of kind k follow a work order's
// assignment.
func perOrder(k Kind) bool { return k == KindWorkOrder || k == KindPhoto || k == KindRequest }

// May reports whether the principal may take action a on r: r is visible
// and the table allows it.
func (p Principal) May(a Action, r Resource) bool {
	if !p.Sees(r) {
		return false
	}
	pm := p.Role == config.RoleProjectManager
	switch a {
	case View:
		return true
	case Report:
		return p.HQ() || pm && r.Kind != KindCompany
	case Acknowledge:
		return r.Kind == KindAlarm && p.Role != config.RoleHQViewer
	case Create:
		return (r.Kind == KindProject || r.Kind == KindWorkOrder) && p.Role != config.RoleHQViewer
	case Manage:
		return p.Role == config.RoleHQAdmin || pm
	case Work:
		return perOrder(r.Kind) && p.Role != config.RoleHQViewer && p.assigned(r)
	case Transition:
		return r.Kind == KindWorkOrder && (p.May(Manage, r) || p.May(Work, r))
	case Contact:
		return r.Kind == KindRequest && (pm || p.Role == config.RoleTechnician && p.assigned(r))
	case Command:
		return r.Kind == KindDevice && p.commands()
	}
	return false
}

// Check is May as an error: nil when allowed, ErrNotVisible when r is not
// visible, ErrForbidden when it is but the action is not allowed.
func (p Principal) Check(a Action, r Resource) error {
	switch {
	case !p.Sees(r):
		return ErrNotVisible
	case !p.May(a, r):
		return ErrForbidden
	}
	return nil
}

// RoleMay reports whether role may take action a on some resource: what a
// route checks before the handler knows which resource a request names
// (a list, or a body naming the project). For Command it answers the
// default table (DefaultCommandRoles); routes that command name their
// device and ask May, which follows the principal's company.
func RoleMay(role string, a Action) bool {
	switch role {
	case config.RoleHQAdmin:
		return a != Contact && (a != Command || slices.Contains(DefaultCommandRoles, role))
	case config.RoleHQViewer:
		return a == View || a == Report
	case config.RoleProjectManager:
		return slices.Contains(Actions, a)
	case config.RoleTechnician:
		return a != Report && a != Manage && slices.Contains(Actions, a)
	}
	return false
}

// Scope is the part of the resources of one kind a principal may see,
// for narrowing a read of stored resources before Sees decides each one
// (lists over history read the store with it: no read of other
// companies' or projects' rows). It never widens what Sees allows.
type Scope struct {
	None     bool     // nothing of the kind is visible
	Company  string   // the principal's company
	Projects []string // nil: every project of the company (HQ)
	// Assignee, when set, limits the resources to those assigned to this
	// staff member (a technician's work orders).
	Assignee string
}

// ScopeOf returns the principal's scope over resources of kind k that
// belong to a project (alarms, work orders, …).
func (p Principal) ScopeOf(k Kind) Scope {
	if p.Company == "" || !slices.Contains(config.Roles, p.Role) {
		return Scope{None: true}
	}
	s := Scope{Company: p.Company}
	if !p.HQ() {
		s.Projects = slices.Clone(p.Projects)
		if len(s.Projects) == 0 {
			return Scope{None: true}
		}
	}
	if p.Role == config.RoleTechnician && perOrder(k) {
		s.Assignee = p.Staff
	}
	return s
}
