package api

import (
	"crypto/sha256"
	"encoding/hex"
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

func newTokens(org *config.Org) tokens {
	t := tokens{}
	for _, s := range org.Staff {
		p := &Principal{Staff: s.ID, Name: s.Name, Role: s.Role, Company: s.Company}
		if !p.HQ() {
			p.Projects = slices.Clone(s.Projects)
		}
		t[s.TokenHash] = p
	}
	return t
}

// HashToken returns the "sha256:<hex>" form org.yaml stores for token.
func HashToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return "sha256:" + hex.EncodeToString(sum[:])
}

// authenticate resolves the bearer token of a request under /api/v1.
func (s *Server) authenticate(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if !strings.HasPrefix(c.Request().URL.Path, Prefix+"/") && c.Request().URL.Path != Prefix {
			return next(c)
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
