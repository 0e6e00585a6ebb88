package api

import (
	_ "embed"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/plantroom/plantroom/config"
)

// OpenAPI is the API's OpenAPI 3 document, served at /api/v1/openapi.yaml.
//
//go:embed openapi.yaml
var OpenAPI []byte

// Roles that may read energy reports of a project: HQ and its managers.
var energyRoles = []string{config.RoleHQAdmin, config.RoleHQViewer, config.RoleProjectManager}

// hqRoles may read the company-wide report.
var hqRoles = []string{config.RoleHQAdmin, config.RoleHQViewer}

// ownRoutes are the routes of this package; other packages add theirs
// with Register.
func (s *Server) ownRoutes() []Route {
	return []Route{
		{Method: http.MethodGet, Path: "/me", Scope: AnyStaff(), Handler: s.me},
		{Method: http.MethodGet, Path: "/openapi.yaml", Scope: AnyStaff(), Handler: serveOpenAPI},
		{Method: http.MethodGet, Path: "/projects", Scope: AnyStaff(), Handler: s.listProjects},
		{Method: http.MethodGet, Path: "/projects/:project", Scope: Project("project"), Handler: s.getProject},
		{Method: http.MethodGet, Path: "/projects/:project/devices", Scope: Project("project"), Handler: s.listDevices},
		{Method: http.MethodGet, Path: "/devices/:device", Scope: Device("device"), Handler: s.getDevice},
		{Method: http.MethodGet, Path: "/devices/:device/series", Scope: Device("device"), Handler: s.series},
		{Method: http.MethodGet, Path: "/projects/:project/energy/monthly", Scope: Project("project", energyRoles...), Handler: s.projectMonthly},
		{Method: http.MethodGet, Path: "/projects/:project/energy/daily", Scope: Project("project", energyRoles...), Handler: s.projectDaily},
		{Method: http.MethodGet, Path: "/energy/monthly", Scope: Company(hqRoles...), Handler: s.companyMonthly},
	}
}

func serveOpenAPI(c echo.Context) error {
	return c.Blob(http.StatusOK, "application/yaml", OpenAPI)
}
