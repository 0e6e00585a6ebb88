package api

import (
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"slices"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/plantroom/plantroom/cloud/access"
	"github.com/plantroom/plantroom/config"
)

// Principal is the authenticated staff member behind a request; what it
// may see and do is package access's decision.
type Principal = access.Principal

// tokens maps "sha256:<hex>" token hashes to staff. Looking a request's
// token up by its hash compares secrets only through the hash, so the
// lookup's timing says nothing about any stored token.
type tokens map[string]*Principal

func newTokens(org *config.Org, rules *config.RuleFile) tokens {
	t := tokens{}
	for _, s := range org.Staff {
		t[s.TokenHash] = NewPrincipal(s, rules)
	}
	return t
}

// NewPrincipal is the principal of a staff member, whatever the way they
// authenticated (an API token, a console session), with what the rules
// file says about their company (who may command its devices; rules nil:
// the defaults).
func NewPrincipal(s config.Staff, rules *config.RuleFile) *Principal {
	p := &Principal{Staff: s.ID, Name: s.Name, Role: s.Role, Company: s.Company}
	if roles, ok := rules.CommandRoles(s.Company); ok {
		p.CommandRoles = slices.Clone(roles)
	}
	if !p.HQ() {
		p.Projects = slices.Clone(s.Projects)
	}
	return p
}

// Sessions authenticates browser requests by a session cookie (the
// console). The API then answers them exactly as it answers a bearer token
// of the same staff member: the same routes, scopes and handlers.
type Sessions interface {
	// SessionPrincipal returns the staff member of r's session, or nil when
	// r carries no session cookie. It returns an *Error when the session has
	// expired or when a state-changing request lacks the session's CSRF
	// token.
	SessionPrincipal(r *http.Request) (*Principal, error)
}

// HashToken returns the "sha256:<hex>" form org.yaml stores for token.
func HashToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return "sha256:" + hex.EncodeToString(sum[:])
}

// authenticate resolves the bearer token of a request under /api/v1.
func (s *Server) authenticate(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		path := c.Request().URL.Path
		if !strings.HasPrefix(path, Prefix+"/") && path != Prefix || strings.HasPrefix(path, Prefix+PublicPrefix) {
			return next(c)
		}
		if s.deps.Sessions != nil && c.Request().Header.Get(echo.HeaderAuthorization) == "" {
			p, err := s.deps.Sessions.SessionPrincipal(c.Request())
			if err != nil {
				return err
			}
			if p != nil {
				c.Set(keyPrincipal, p)
				return next(c)
			}
		}
		scheme, token, ok := strings.Cut(c.Request().Header.Get(echo.HeaderAuthorization), " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(token) == "" {
			c.Response().Header().Set(echo.HeaderWWWAuthenticate, `Bearer realm="plantroom"`)
			return errUnauthorized
		}
		p := s.tokens[HashToken(strings.TrimSpace(token))]
		if p == nil {
			c.Response().Header().Set(echo.HeaderWWWAuthenticate, `Bearer realm="plantroom", error="invalid_token"`)
			return errInvalidToken
		}
		c.Set(keyPrincipal, p)
		return next(c)
	}
}
