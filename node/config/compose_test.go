package config

import (
	"github.com/grapevine-gw/grapevine/internal/listen"
	"net"
	"os"
	"regexp"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// composeFile is the part of docker-compose.yml this test reads.
type composeFile struct {
	Services map[string]struct {
		Command     []string          `yaml:"command"`
		Environment map[string]string `yaml:"environment"`
		Ports       []string          `yaml:"ports"`
	} `yaml:"services"`
}

// TestDockerComposeMatchesConfig checks what can be checked without a Docker
// engine: every GRAPEVINE_* variable is a real config key with a valid
// value, and the ports published, proxied by nginx and exposed by the
// Dockerfile are the ones the nodes listen on.
func TestDockerComposeMatchesConfig(t *testing.T) {
	raw, err := os.ReadFile("../../docker-compose.yml")
	if err != nil {
		t.Fatal(err)
	}
	var compose composeFile
	if err := yaml.Unmarshal(raw, &compose); err != nil {
		t.Fatalf("docker-compose.yml is not valid YAML: %v", err)
	}
	nodes := 0
	for name, svc := range compose.Services {
		if !strings.HasPrefix(name, "grapevine-") && name != "migrations" {
			continue
		}
		t.Run(name, func(t *testing.T) {
			cfg := checkEnvironment(t, svc.Environment)
			if name == "migrations" {
				return
			}
			nodes++
			checkPublishedPorts(t, svc.Ports, cfg)
			checkNginxUpstream(t, name, cfg)
		})
	}
	if nodes != 3 {
		t.Fatalf("got %d grapevine nodes in docker-compose.yml, want 3", nodes)
	}
	checkDockerfileExposes(t, Default())
}

// checkEnvironment loads a config from the service's environment alone.
func checkEnvironment(t *testing.T, env map[string]string) Config {
	t.Helper()
	var environ []string
	for k, v := range env {
		if !strings.HasPrefix(k, EnvPrefix) {
			t.Errorf("variable %s does not start with %s", k, EnvPrefix)
			continue
		}
		if key := strings.ToLower(strings.TrimPrefix(k, EnvPrefix)); !IsKey(key) {
			t.Errorf("%s sets %q, which is not a config key", k, key)
		}
		environ = append(environ, k+"="+v)
	}
	cfg, err := Load("", environ)
	if err != nil {
		t.Fatalf("the service's environment is not a valid config: %v", err)
	}
	return cfg
}

func port(t *testing.T, addr string) string {
	_, p, err := net.SplitHostPort(listen.AddrOf(addr))
	if err != nil {
		t.Fatalf("address %q: %v", addr, err)
	}
	return p
}

// checkPublishedPorts: every "host:container" mapping targets the admin port.
func checkPublishedPorts(t *testing.T, ports []string, cfg Config) {
	adminPort := port(t, cfg.AdminListen[0])
	for _, mapping := range ports {
		parts := strings.Split(mapping, ":")
		if container := parts[len(parts)-1]; container != adminPort {
			t.Errorf("publishes container port %s, but the node's admin_listen port is %s", container, adminPort)
		}
	}
}

var nginxServer = regexp.MustCompile(`server\s+(grapevine-\d+):(\d+);`)

// checkNginxUpstream: nginx sends proxy traffic to this node's proxy port.
func checkNginxUpstream(t *testing.T, name string, cfg Config) {
	raw, err := os.ReadFile("../../scripts/docker/nginx.conf")
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range nginxServer.FindAllStringSubmatch(string(raw), -1) {
		if m[1] == name {
			if want := port(t, cfg.ProxyListen[0]); m[2] != want {
				t.Errorf("nginx sends %s traffic to port %s, want proxy_listen's %s", name, m[2], want)
			}
			return
		}
	}
	t.Errorf("nginx.conf has no upstream server for %s", name)
}

// checkDockerfileExposes: the image exposes proxy, admin and gossip ports.
func checkDockerfileExposes(t *testing.T, cfg Config) {
	raw, err := os.ReadFile("../../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	expose := regexp.MustCompile(`(?m)^EXPOSE (.+)$`).FindStringSubmatch(string(raw))
	if expose == nil {
		t.Fatal("Dockerfile has no EXPOSE line")
	}
	wants := []string{port(t, cfg.AdminListen[0]), port(t, cfg.ClusterListen), port(t, cfg.ClusterListen) + "/udp"}
	for _, entry := range cfg.ProxyListen {
		wants = append(wants, port(t, entry))
	}
	for _, want := range wants {
		if !strings.Contains(" "+expose[1]+" ", " "+want+" ") {
			t.Errorf("Dockerfile EXPOSE %q lacks %s", expose[1], want)
		}
	}
}
