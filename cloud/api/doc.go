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
// runs. A package's HTTP side (cloud/alarm/alarmhttp,
// cloud/workorder/workorderhttp: the domain packages themselves never
// import this one) returns its routes and cmd/cloud registers them before
// Start:
//
//	func Routes(e *alarm.Engine) []api.Route {
//		h := &handlers{e: e}
//		res := api.Resource(access.KindAlarm, "alarm", h.owner)
//		return []api.Route{
//			{Method: http.MethodGet, Path: "/alarms", Scope: api.AnyStaff(), Handler: h.list},
//			{Method: http.MethodGet, Path: "/alarms/:alarm", Scope: res, Handler: h.get},
//			{Method: http.MethodPost, Path: "/alarms/:alarm/ack", Scope: res.Do(access.Acknowledge), Handler: h.ack},
//		}
//	}
//	srv.Register(alarmhttp.Routes(engine)...)
//
// The scopes:
//
//	api.AnyStaff()                       any caller; the handler filters lists with Principal.Sees
//	api.Company()                        the caller's company as a whole (HQ reports)
//	api.Project(param)                   the project named by :param
//	api.Device(param)                    the device named by :param
//	api.Resource(kind, param, resolve)   a resource of another package; resolve(ctx, id) returns
//	                                     its access.Resource{Company, Project, Assignee} or an
//	                                     error wrapping api.ErrNotFound
//
// A scope's action is access.View unless scope.Do(action) names another;
// every route with a method other than GET names one. The decision is
// package access's (its documentation has the whole table): a resource the
// caller cannot see answers 404 exactly like one that does not exist; a
// visible one on which the caller may not take the action answers 403 (so
// does a company-wide route for project staff: their own company is no
// secret). For AnyStaff scopes the role must be allowed the action on some
// resource; the handler or the domain package checks the one it touches.
// Register panics with "BUG:" on a route without a scope, a scope whose
// parameter the path lacks, an unknown action, a changing route without an
// action, or a duplicate.
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
// cloud/workorder/workorderhttp's TestAccessMatrix for the alarm and work-order routes.
package api
