package vaultsource

import (
	"fmt"
	"net"
	"sort"
	"strings"

	"github.com/rotation-agent/rotation-agent/discovery"
	"github.com/rotation-agent/rotation-agent/events"
	"github.com/rotation-agent/rotation-agent/rotators/database"
)

// source validates the entry and returns it as a runnable source.
func (s DatabaseSource) source() source {
	mount := cleanMount(s.Mount)
	src := source{key: SourceDatabase + ":" + mount}
	if !validName(mount, true) {
		src.invalid = fmt.Errorf("database entry: mount %q is not a mount path", s.Mount)
	}
	src.run = func(w *walker) ([]discovery.Binding, error) { return discoverDatabase(w, mount) }
	return src
}

// discoverDatabase lists the static roles of a database mount. Each role becomes up to three
// database-static-role bindings, one per selector, so a change naming any one of them selects
// the role: identities=<username>, configuration_items=<db_name> (the connection), and
// hosts=<the hosts of the connection's connection_url>.
func discoverDatabase(w *walker, mount string) ([]discovery.Binding, error) {
	if err := w.visit(); err != nil {
		return nil, err
	}
	roles, err := w.list(mount + "/static-roles")
	if err != nil {
		return nil, err
	}
	hostsOf := map[string][]string{}
	var out []discovery.Binding
	for _, role := range roles {
		if strings.HasSuffix(role, "/") {
			continue
		}
		if err := w.visit(); err != nil {
			return out, err
		}
		s, err := w.read(mount + "/static-roles/" + role)
		if err != nil {
			return out, err
		}
		if s == nil || s.Data == nil {
			continue
		}
		conn, user := str(s.Data["db_name"]), str(s.Data["username"])
		hosts, known := hostsOf[conn]
		if !known && conn != "" {
			if err := w.visit(); err != nil {
				return out, err
			}
			c, err := w.read(mount + "/config/" + conn)
			if err != nil {
				return out, err
			}
			if c != nil && c.Data != nil {
				details, _ := c.Data["connection_details"].(map[string]any)
				hosts = connectionHosts(str(details["connection_url"]))
			}
			hostsOf[conn] = hosts
		}
		src := SourceDatabase + ":" + mount + "/static-roles/" + role
		ref := events.CredentialRef{Kind: database.KindStaticRole, Mount: mount, Path: role}
		add := func(key string, vals []string) {
			if len(vals) == 0 {
				return
			}
			out = append(out, discovery.Binding{
				Name:       SourcePrefix + src + " #" + key,
				Source:     SourcePrefix + src,
				Selectors:  discovery.Selectors{key: vals},
				Credential: ref,
			})
		}
		add(discovery.KeyIdentity, lowerList(user))
		add(discovery.KeyCI, lowerList(conn))
		add(discovery.KeyHost, hosts)
	}
	return out, nil
}

func lowerList(s string) []string {
	if s = strings.ToLower(strings.TrimSpace(s)); s == "" {
		return nil
	}
	return []string{s}
}

// connectionHosts returns the hosts a connection_url names, lower-case and sorted, without
// ports. It understands URLs ("postgresql://{{username}}:{{password}}@db1:5432/app",
// several hosts separated by commas), Go MySQL DSNs ("user:pw@tcp(db1:3306)/"), Oracle-style
// "user/pw@db1:1521/svc" and key=value DSNs ("host=db1 port=5432"). Unix socket paths and
// templates are left out. The URL itself is never kept: it may hold a literal password.
func connectionHosts(raw string) []string {
	s := strings.TrimSpace(raw)
	var candidates []string
	switch {
	case !strings.Contains(s, "://") && !strings.Contains(s, "@") && strings.Contains(s, "host="):
		for _, f := range strings.Fields(s) {
			if v, ok := strings.CutPrefix(f, "host="); ok {
				candidates = append(candidates, strings.Split(strings.Trim(v, `'"`), ",")...)
			}
		}
	case strings.Contains(s, "tcp("):
		rest := s[strings.Index(s, "tcp(")+len("tcp("):]
		if end := strings.Index(rest, ")"); end >= 0 {
			candidates = append(candidates, rest[:end])
		}
	default:
		if _, after, ok := strings.Cut(s, "://"); ok {
			s = after
			if end := strings.IndexAny(s, "/?#"); end >= 0 {
				s = s[:end]
			}
			if at := strings.LastIndex(s, "@"); at >= 0 {
				s = s[at+1:]
			}
		} else {
			if at := strings.LastIndex(s, "@"); at >= 0 {
				s = s[at+1:]
			}
			if end := strings.IndexAny(s, "/?#"); end >= 0 {
				s = s[:end]
			}
		}
		candidates = strings.Split(s, ",")
	}
	var out []string
	for _, c := range candidates {
		if h := hostOnly(strings.TrimSpace(c)); h != "" {
			out = appendUnique(out, h)
		}
	}
	sort.Strings(out)
	return out
}

// hostOnly strips the port from "host", "host:port", "[v6]:port" or a bare IPv6 address, and
// refuses socket paths and templates.
func hostOnly(hp string) string {
	if hp == "" || strings.HasPrefix(hp, "/") || strings.Contains(hp, "{{") {
		return ""
	}
	if h, _, err := net.SplitHostPort(hp); err == nil {
		hp = h
	} else if strings.HasPrefix(hp, "[") && strings.HasSuffix(hp, "]") {
		hp = hp[1 : len(hp)-1]
	}
	return strings.ToLower(hp)
}
