// Package api is the cloud's HTTP API (Echo): staff authentication, the
// three-tier access rules, one JSON error shape, request ids, access log,
// metrics, health endpoints, and the devices and energy routes. Other
// packages (alarms, work orders) add their routes through Server.Register.
// docs/api.md describes the API for its users; openapi.yaml is its
// OpenAPI document, served at /api/v1/openapi.yaml.
//
// # Adding a route
//
// Every route under /api/v1 declares a Scope, checked before its handler
// runs. A package returns its routes and cmd/cloud registers them before
// Start:
//
//	func (e *Engine) Routes() []api.Route {
//		return []api.Route{
//			{Method: http.MethodGet, Path: "/alarms", Scope: api.AnyStaff(), Handler: e.list},
//			{Method: http.MethodGet, Path: "/alarms/:alarm", Scope: api.Resource("alarm", "alarm", e.owner), Handler: e.get},
//			{Method: http.MethodPost, Path: "/alarms/:alarm/ack",
//				Scope: api.Resource("alarm", "alarm", e.owner, config.RoleHQAdmin, config.RoleProjectManager, config.RoleTechnician),
//				Handler: e.ack},
//		}
//	}
//	srv.Register(engine.Routes()...)
//
// The scopes:
//
//	api.AnyStaff(roles...)               any caller (of roles); the handler filters lists with Principal.CanSeeProject
//	api.Company(roles...)                the caller's company as a whole (HQ reports)
//	api.Project(param, roles...)         the project named by :param
//	api.Device(param, roles...)          the device named by :param
//	api.Resource(kind, param, resolve, roles...)
//	                                     a resource of another package; resolve(ctx, id) returns its
//	                                     api.Owner{Company, Project, Assignees} or an error wrapping
//	                                     api.ErrNotFound
//
// A resource the caller cannot see answers 404 exactly like one that does
// not exist; a visible one whose role is not among roles answers 403, and
// hq_viewer gets 403 on every method but GET. Technicians see a resource
// whose Owner lists Assignees only when they are among them (work orders).
// Register panics with "BUG:" on a route without a scope, a scope whose
// parameter the path lacks, an unknown role or a duplicate.
//
// In a handler, PrincipalOf(c) is the caller, OwnerOf(c) what the scope
// resolved, ProjectOf(c) and DeviceOf(c) the project and device of Project
// and Device scopes. Return an *Error (BadRequest, Unprocessable, or
// &Error{Status, Code, Message}) or any error; the error handler writes
// {"error": {"code", "message", "request_id"}} and logs 5xx only. Mark a
// server-sent-events route Stream: it then has no request deadline and no
// write timeout.
//
// A new route also needs: its path and method in openapi.yaml
// (TestOpenAPIMatchesRoutes fails otherwise, and registers the alarm and
// work-order routes to check theirs), and an entry in an access matrix
// test: accessTable in this package's access_test.go for its own routes,
// the alarm and work-order packages' TestAccessMatrix for theirs.
package api
