package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/plantroom/plantroom/cloud/access"
	"github.com/plantroom/plantroom/config"
)

// Scope kinds built into the API besides the resource kinds of package
// access.
const (
	KindStaff   = "staff"  // any authenticated staff member; the handler filters
	KindPublic  = "public" // anyone, without authentication: paths under PublicPrefix
	KindCompany = access.KindCompany
	KindProject = access.KindProject
	KindDevice  = access.KindDevice
)

// ErrNotFound is what a Resolver returns for an id that does not exist.
var ErrNotFound = errors.New("not found")

// Resolver finds where the resource a path parameter names belongs. It
// returns an error wrapping ErrNotFound when there is none.
type Resolver func(ctx context.Context, id string) (access.Resource, error)

// Scope is the access rule of a route: which resource the request touches
// and which action it takes on it. Every route has one (see Route); the
// decision is access's:
//
//   - the resource must be visible to the caller, or the answer is 404 (a
//     caller cannot tell "forbidden" from "does not exist");
//   - the caller must be allowed the scope's action on it, or the answer
//     is 403 (for AnyStaff scopes: allowed it on some resource).
//
// The action is access.View unless Do names another; a route with a method
// other than GET or HEAD must name one.
type Scope struct {
	kind    access.Kind
	param   string
	resolve Resolver
	action  access.Action
}

// AnyStaff is the scope of routes about the caller or lists the handler
// filters itself (with Principal.Sees): every authenticated staff member
// whose role may take the scope's action somewhere may call them.
func AnyStaff() Scope { return Scope{kind: KindStaff} }

// PublicPrefix is where public routes live, under Prefix: what residents
// reach without an account (a repair request through a project's public
// link, its tracking page). Nothing else under Prefix is public.
const PublicPrefix = "/public/"

// Public is the scope of routes anyone may call without authentication:
// their path must start with PublicPrefix, and the handler itself decides
// what an unguessable token in the path gives access to (and limits
// abuse). Authentication is not even attempted on them.
func Public() Scope { return Scope{kind: KindPublic} }

// Company is the scope of company-wide routes (the HQ report): the caller's
// own company, visible to HQ roles only.
func Company() Scope { return Scope{kind: KindCompany} }

// Project is the scope of routes under a project named by path parameter
// param: visible to its company's HQ and to staff of that project.
func Project(param string) Scope { return Scope{kind: KindProject, param: param} }

// Device is the scope of routes about a device named by path parameter
// param: visible like the device's project.
func Device(param string) Scope { return Scope{kind: KindDevice, param: param} }

// Resource is the scope of routes about a resource of kind (an alarm, a
// work order) named by path parameter param; resolve says where it belongs.
func Resource(kind access.Kind, param string, resolve Resolver) Scope {
	return Scope{kind: kind, param: param, resolve: resolve}
}

// Do returns the scope for routes that take action a.
func (s Scope) Do(a access.Action) Scope {
	s.action = a
	return s
}

// Kind is the scope's kind: KindStaff, KindCompany, KindProject, KindDevice
// or a resource kind.
func (s Scope) Kind() access.Kind { return s.kind }

// Param is the path parameter naming the resource ("" for staff and company).
func (s Scope) Param() string { return s.param }

// Action is the action the scope's routes take.
func (s Scope) Action() access.Action {
	if s.action == "" {
		return access.View
	}
	return s.action
}

// Allows reports whether role may use a route of this scope on some
// resource of the scope's kind (one it can see, assigned to it).
func (s Scope) Allows(role string) bool {
	if s.kind == KindStaff {
		return access.RoleMay(role, s.Action())
	}
	if s.kind == KindPublic {
		return true
	}
	p := access.Principal{Staff: "s", Role: role, Company: "c", Projects: []string{"p"}}
	r := access.Resource{Kind: s.kind, Company: "c", Project: "p", Assignee: "s"}
	if s.kind == KindCompany {
		r.Project, r.Assignee = "", ""
	}
	return p.May(s.Action(), r)
}

// check panics with "BUG:" on a scope that cannot work on path.
func (s Scope) check(method, path string) {
	where := method + " " + path
	switch s.kind {
	case "":
		panic("BUG: route " + where + " has no scope; give it api.AnyStaff, api.Company, api.Project, api.Device or api.Resource")
	case KindPublic:
		if !strings.HasPrefix(path, Prefix+PublicPrefix) {
			panic("BUG: route " + where + ": a public route's path must start with " + Prefix + PublicPrefix)
		}
		return
	case KindStaff, KindCompany:
		if s.param != "" {
			panic("BUG: route " + where + ": a " + string(s.kind) + " scope takes no parameter")
		}
	default:
		if s.param == "" || !slices.Contains(pathParams(path), s.param) {
			panic(fmt.Sprintf("BUG: route %s: scope %s names parameter %q, which the path lacks", where, s.kind, s.param))
		}
		if s.kind != KindProject && s.kind != KindDevice && s.resolve == nil {
			panic("BUG: route " + where + ": resource scope " + string(s.kind) + " has no resolver")
		}
	}
	if s.action != "" && !slices.Contains(access.Actions, s.action) {
		panic(fmt.Sprintf("BUG: route %s: unknown action %q in scope", where, s.action))
	}
	if s.Action() == access.View && method != http.MethodGet && method != http.MethodHead {
		panic("BUG: route " + where + ": a route that changes something names its action with Scope.Do")
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
			if sc.kind == KindPublic {
				return next(c)
			}
			p, ok := c.Get(keyPrincipal).(*Principal)
			if !ok {
				return errUnauthorized
			}
			var res access.Resource
			id := c.Param(sc.param)
			switch sc.kind {
			case KindStaff:
				if !sc.Allows(p.Role) {
					return forbidden(p, sc.Action())
				}
				c.Set(keyOwner, access.Resource{Kind: KindCompany, Company: p.Company})
				return next(c)
			case KindCompany:
				res = access.Resource{Kind: KindCompany, Company: p.Company}
			case KindProject:
				co, pr, found := s.org().FindProject(id)
				if !found {
					return notFound(string(sc.kind), id)
				}
				res = access.ProjectOf(co.ID, pr.ID)
				c.Set(keyProject, projectRef{co, pr})
			case KindDevice:
				d, found := s.device(id)
				if !found {
					return notFound(string(sc.kind), id)
				}
				res = access.Resource{Kind: KindDevice, Company: d.Company.ID, Project: d.Project.ID}
				c.Set(keyProject, projectRef{d.Company, d.Project})
				c.Set(keyDevice, d)
			default:
				var err error
				res, err = sc.resolve(c.Request().Context(), id)
				if errors.Is(err, ErrNotFound) {
					return notFound(string(sc.kind), id)
				}
				if err != nil {
					return fmt.Errorf("cannot look up %s %q: %w", sc.kind, id, err)
				}
				if res.Kind == "" {
					res.Kind = sc.kind
				}
			}
			switch err := p.Check(sc.Action(), res); {
			case err == access.ErrNotVisible && sc.kind == KindCompany:
				// The caller's own company is no secret: its company-wide
				// routes answer 403, not 404, to project staff.
				return forbidden(p, sc.Action())
			case err == access.ErrNotVisible:
				return notFound(string(sc.kind), id)
			case err == access.ErrForbidden:
				return forbidden(p, sc.Action())
			}
			c.Set(keyOwner, res)
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

// OwnerOf returns the resource the route's scope checked.
func OwnerOf(c echo.Context) access.Resource {
	o, _ := c.Get(keyOwner).(access.Resource)
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
