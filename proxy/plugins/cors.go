package plugins

import (
	"net/url"
	"regexp"
	"strconv"
	"strings"

	"github.com/grapevine-gw/grapevine/entity"
	"github.com/grapevine-gw/grapevine/proxy"
	"github.com/grapevine-gw/grapevine/proxy/pdk"
)

// cors (kong/plugins/cors/handler.lua): a preflight (OPTIONS with Origin
// and Access-Control-Request-Method) is answered by the gateway with 200
// unless preflight_continue; other answers get the allow-origin,
// credentials and expose headers.

func init() { register("cors", buildCORS) }

type corsConfig struct {
	Origins           []string `json:"origins"`
	Headers           []string `json:"headers"`
	ExposedHeaders    []string `json:"exposed_headers"`
	Methods           []string `json:"methods"`
	MaxAge            *float64 `json:"max_age"`
	Credentials       bool     `json:"credentials"`
	PrivateNetwork    bool     `json:"private_network"`
	PreflightContinue bool     `json:"preflight_continue"`
}

// corsOrigin is one configured origin: a regex, or a normalised domain.
type corsOrigin struct {
	re     *regexp.Regexp
	domain string
	byHost bool // the entry has no ":": compared with the origin's host
}

type corsPlugin struct {
	c         corsConfig
	origins   []corsOrigin
	allowAll  bool   // no origins, or only "*"
	literal   string // a single plain origin, sent as it is
	hasStar   bool
	skipKey   *int // kong.ctx.plugin.skip_response_headers
	methods   string
	maxAge    string
	allowHdrs string
}

var plainOrigin = regexp.MustCompile(`^[A-Za-z0-9.:/-]+$`)

func buildCORS(_ *Env, p *entity.Plugin) (hooks [proxy.NumPhases]proxy.Hook, err error) {
	cp := &corsPlugin{skipKey: new(int)}
	if err := decodeConfig(p, &cp.c); err != nil {
		return hooks, err
	}
	c := &cp.c
	n := len(c.Origins)
	cp.allowAll = n == 0 || n == 1 && c.Origins[0] == "*"
	if n == 1 && plainOrigin.MatchString(c.Origins[0]) {
		cp.literal = c.Origins[0]
	}
	for _, entry := range c.Origins {
		if entry == "*" {
			cp.hasStar = true
			break
		}
		o := corsOrigin{byHost: !strings.Contains(entry, ":")}
		if !plainOrigin.MatchString(entry) {
			if !strings.HasSuffix(entry, "$") {
				entry += "$"
			}
			entry = strings.TrimPrefix(entry, "^")
			if o.re, err = regexp.Compile(entry); err != nil {
				return hooks, err
			}
		} else {
			o.domain, _ = normalizeOrigin(entry)
		}
		cp.origins = append(cp.origins, o)
	}
	cp.methods = "GET,HEAD,PUT,PATCH,POST,DELETE,OPTIONS,TRACE,CONNECT"
	if c.Methods != nil {
		cp.methods = strings.Join(c.Methods, ",")
	}
	if c.MaxAge != nil {
		cp.maxAge = strconv.FormatFloat(*c.MaxAge, 'f', -1, 64)
	}
	cp.allowHdrs = strings.Join(c.Headers, ",")
	hooks[proxy.PhaseAccess] = cp.access
	hooks[proxy.PhaseHeaderFilter] = cp.headerFilter
	return hooks, nil
}

// normalizeOrigin is the handler's normalize_origin: scheme://host[:port]
// without a default port, and the host.
func normalizeOrigin(origin string) (domain, host string) {
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" {
		return origin, origin
	}
	port := u.Port()
	if u.Scheme == "http" && port == "80" || u.Scheme == "https" && port == "443" {
		port = ""
	}
	domain = u.Hostname()
	if u.Scheme != "" {
		domain = u.Scheme + "://" + domain
	}
	if port != "" {
		domain += ":" + port
	}
	return domain, u.Hostname()
}

func (cp *corsPlugin) access(x pdk.Exchange) {
	if string(x.Method()) != "OPTIONS" {
		return
	}
	if _, n := x.Header("Origin"); n == 0 {
		return
	}
	if _, n := x.Header("Access-Control-Request-Method"); n == 0 {
		return
	}
	x.SetValue(cp.skipKey, true)
	if cp.c.PreflightContinue {
		return
	}
	allowAll := cp.configureOrigin(x, false)
	cp.configureCredentials(x, allowAll, false)
	switch acrh, n := x.Header("Access-Control-Request-Headers"); {
	case len(cp.c.Headers) > 0:
		x.SetResponseHeader("Access-Control-Allow-Headers", cp.allowHdrs)
	case n > 0:
		x.SetResponseHeader("Access-Control-Allow-Headers", string(acrh))
	default:
		x.ClearResponseHeader("Access-Control-Allow-Headers")
	}
	x.SetResponseHeader("Access-Control-Allow-Methods", cp.methods)
	if cp.maxAge != "" {
		x.SetResponseHeader("Access-Control-Max-Age", cp.maxAge)
	}
	if pn, _ := x.Header("Access-Control-Request-Private-Network"); cp.c.PrivateNetwork && string(pn) == "true" {
		x.SetResponseHeader("Access-Control-Allow-Private-Network", "true")
	}
	x.Exit(200, nil, "")
}

func (cp *corsPlugin) headerFilter(x pdk.Exchange) {
	if x.Value(cp.skipKey) != nil {
		return
	}
	allowAll := cp.configureOrigin(x, true)
	cp.configureCredentials(x, allowAll, true)
	if len(cp.c.ExposedHeaders) > 0 {
		x.SetResponseHeader("Access-Control-Expose-Headers", strings.Join(cp.c.ExposedHeaders, ","))
	}
}

func vary(x pdk.Exchange, headerFilter bool) {
	if headerFilter {
		x.AddResponseHeader("Vary", "Origin")
	} else {
		x.SetResponseHeader("Vary", "Origin")
	}
}

// configureOrigin is the handler's configure_origin; it reports whether
// every origin is allowed.
func (cp *corsPlugin) configureOrigin(x pdk.Exchange, headerFilter bool) bool {
	if cp.allowAll {
		x.SetResponseHeader("Access-Control-Allow-Origin", "*")
		return true
	}
	vary(x, headerFilter)
	if cp.literal != "" {
		x.SetResponseHeader("Access-Control-Allow-Origin", cp.literal)
		return false
	}
	if origin, n := x.Header("Origin"); n > 0 {
		if cp.hasStar {
			x.SetResponseHeader("Access-Control-Allow-Origin", "*")
			return true
		}
		domain, host := normalizeOrigin(string(origin))
		for _, o := range cp.origins {
			subject := domain
			if o.byHost {
				subject = host
			}
			if o.re != nil && o.re.MatchString(subject) || o.re == nil && o.domain == domain {
				x.SetResponseHeader("Access-Control-Allow-Origin", domain)
				return false
			}
		}
	}
	x.ClearResponseHeader("Access-Control-Allow-Origin")
	return false
}

func (cp *corsPlugin) configureCredentials(x pdk.Exchange, allowAll, headerFilter bool) {
	if !cp.c.Credentials {
		return
	}
	if !allowAll {
		x.SetResponseHeader("Access-Control-Allow-Credentials", "true")
		return
	}
	if origin, n := x.Header("Origin"); n > 0 {
		vary(x, headerFilter)
		x.SetResponseHeader("Access-Control-Allow-Origin", string(origin))
		x.SetResponseHeader("Access-Control-Allow-Credentials", "true")
	}
}
