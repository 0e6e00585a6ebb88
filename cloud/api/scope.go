package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/plantroom/plantroom/config"
)

// Scope kinds built into the API. Resource scopes add their own kinds.
const (
	KindStaff   = "staff"   // any authenticated staff member; the handler filters
	KindCompany = "company" // the caller's own company as a whole
	KindProject = "project" // a project named by a path parameter
	KindDevice  = "device"  // a device named by a path parameter
)

// ErrNotFound is what a Resolver returns for an id that does not exist.
var ErrNotFound = errors.New("not found")

// Owner says where a resource belongs, which decides who may see it.
type Owner struct {
	Company string
	Project string // "" for a company-wide resource: HQ roles only
	// Assignees, when not nil, limit technicians to the staff listed (a work
	// order is visible to the technicians it is assigned to).
	Assignees []string
}

// Resolver finds the owner of the resource a path parameter names. It
// returns an error wrapping ErrNotFound when there is none.
type Resolver func(ctx context.Context, id string) (Owner, error)

// Scope is the access rule of a route: which resource the request touches
// and which roles may touch it. Every route has one (see Route).
//
//   - the resource must be visible to the caller, or the answer is 404 (a
//     caller cannot tell "forbidden" from "does not exist");
//   - the caller's role must be among the scope's roles (none listed: all
//     roles), or the answer is 403;
//   - hq_viewer is read-only: any method but GET and HEAD answers 403.
type Scope struct {
	kind    string
	param   string
	resolve Resolver
	roles   []string
}

// AnyStaff is the scope of routes about the caller or lists the handler
// filters itself (with Principal.CanSeeProject): every authenticated staff
// member may call them.
func AnyStaff(roles ...string) Scope { return Scope{kind: KindStaff, roles: roles} }

// Company is the scope of company-wide routes (the HQ report): the caller's
// own company, limited to roles.
func Company(roles ...string) Scope { return Scope{kind: KindCompany, roles: roles} }

// Project is the scope of routes under a project named by path parameter
// param: visible to its company's HQ and to staff of that project.
func Project(param string, roles ...string) Scope {
	return Scope{kind: KindProject, param: param, roles: roles}
}

// Device is the scope of routes about a device named by path parameter
// param: visible like the device's project.
func Device(param string, roles ...string) Scope {
	return Scope{kind: KindDevice, param: param, roles: roles}
}

// Resource is the scope of routes about a resource of kind (an alarm, a
// work order) named by path parameter param; resolve says where it belongs.
func Resource(kind, param string, resolve Resolver, roles ...string) Scope {
	return Scope{kind: kind, param: param, resolve: resolve, roles: roles}
}

// Kind is the scope's kind: KindStaff, KindCompany, KindProject, KindDevice
// or a resource kind.
func (s Scope) Kind() string { return s.kind }

// Param is the path parameter naming the resource ("" for staff and company).
func (s Scope) Param() string { return s.param }

// Roles are the roles allowed; empty means every role.
func (s Scope) Roles() []string { return slices.Clone(s.roles) }

// Allows reports whether role may use a route of this scope with method,
// once the resource is visible.
func (s Scope) Allows(role, method string) bool {
	if len(s.roles) > 0 && !slices.Contains(s.roles, role) {
		return false
	}
	if role == config.RoleHQViewer && method != http.MethodGet && method != http.MethodHead {
		return false
	}
	return true
}

// check panics with "BUG:" on a scope that cannot work on path.
func (s Scope) check(method, path string) {
	where := method + " " + path
	switch s.kind {
	case "":
		panic("BUG: route " + where + " has no scope; give it api.AnyStaff, api.Company, api.Project, api.Device or api.Resource")
	case KindStaff, KindCompany:
		if s.param != "" {
			panic("BUG: route " + where + ": a " + s.kind + " scope takes no parameter")
		}
	default:
		if s.param == "" || !slices.Contains(pathParams(path), s.param) {
			panic(fmt.Sprintf("BUG: route %s: scope %s names parameter %q, which the path lacks", where, s.kind, s.param))
		}
		if s.kind != KindProject && s.kind != KindDevice && s.resolve == nil {
			panic("BUG: route " + where + ": resource scope " + s.kind + " has no resolver")
		}
	}
	for _, r := range s.roles {
		if !slices.Contains(config.Roles, r) {
			panic(fmt.Sprintf("BUG: route %s: unknown role %q in scope", where, r))
		}
	}
}

// pathParams lists the ":name" parameters of an Echo path.
func pathParams(path string) []string {
	var out []string
	for _, seg := range strings.Split(path, "/") {
		if name, ok := strings.CutPrefix(seg, ":"); ok {
			out = append(out, name)
		}
	}
	return out
}

// Context keys of what the scope check found.
const (
	keyPrincipal = "plantroom.principal"
	keyOwner     = "plantroom.owner"
	keyProject   = "plantroom.project"
	keyDevice    = "plantroom.device"
)

// guard is the middleware enforcing a route's scope.
func (s *Server) guard(sc Scope) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			p, ok := c.Get(keyPrincipal).(*Principal)
			if !ok {
				return errUnauthorized
			}
			var owner Owner
			switch sc.kind {
			case KindStaff:
				owner = Owner{Company: p.Company}
			case KindCompany:
				owner = Owner{Company: p.Company}
			case KindProject:
				id := c.Param(sc.param)
				co, pr, found := s.org().FindProject(id)
				if !found || !p.CanSee(Owner{Company: co.ID, Project: pr.ID}) {
					return notFound("project", id)
				}
				owner = Owner{Company: co.ID, Project: pr.ID}
				c.Set(keyProject, projectRef{co, pr})
			case KindDevice:
				id := c.Param(sc.param)
				d, found := s.device(id)
				if !found || !p.CanSee(Owner{Company: d.Company.ID, Project: d.Project.ID}) {
					return notFound("device", id)
				}
				owner = Owner{Company: d.Company.ID, Project: d.Project.ID}
				c.Set(keyProject, projectRef{d.Company, d.Project})
				c.Set(keyDevice, d)
			default:
				id := c.Param(sc.param)
				o, err := sc.resolve(c.Request().Context(), id)
				if errors.Is(err, ErrNotFound) || err == nil && !p.CanSee(o) {
					return notFound(sc.kind, id)
				}
				if err != nil {
					return fmt.Errorf("cannot look up %s %q: %w", sc.kind, id, err)
				}
				owner = o
			}
			if !sc.Allows(p.Role, c.Request().Method) {
				return forbidden(p, c.Request().Method)
			}
			c.Set(keyOwner, owner)
			return next(c)
		}
	}
}

type projectRef struct {
	company *config.Company
	project *config.Project
}

// PrincipalOf returns the authenticated caller of a request that passed a
// route's scope check.
func PrincipalOf(c echo.Context) *Principal {
	p, _ := c.Get(keyPrincipal).(*Principal)
	return p
}

// OwnerOf returns the owner of the resource the route's scope checked.
func OwnerOf(c echo.Context) Owner {
	o, _ := c.Get(keyOwner).(Owner)
	return o
}

// ProjectOf returns the project (and its company) a Project or Device
// scope resolved.
func ProjectOf(c echo.Context) (*config.Company, *config.Project) {
	r, _ := c.Get(keyProject).(projectRef)
	return r.company, r.project
}

// DeviceOf returns the device a Device scope resolved.
func DeviceOf(c echo.Context) config.DeviceInfo {
	d, _ := c.Get(keyDevice).(config.DeviceInfo)
	return d
}
