package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/plantroom/plantroom/cloud/store"
	"github.com/plantroom/plantroom/internal/nettest"
)

// ClickHouse restart modes of the clickhouse-restart drill.
const (
	// CHPrivate runs a ClickHouse server of the drill's own (same binary
	// as scripts/clickhouse.sh, own ports and data directory) and
	// restarts it: a real restart that disturbs nobody else.
	CHPrivate = "private"
	// CHShared restarts the common local server with scripts/clickhouse.sh
	// stop/start: only when nothing else uses it.
	CHShared = "shared"
	// CHProxy cuts a TCP path between the cloud and ClickHouse: for a
	// remote server the drill cannot restart.
	CHProxy = "proxy"
)

// chTarget is where a stand's data lives: the database on a server, and
// how the cloud reaches it (directly, or through a link the drill cuts).
type chTarget struct {
	addr, user, password string
	database             string
	proxy                *nettest.Proxy // CHProxy: the cloud's path to the server
	server               *chServer      // CHPrivate: the drill's own server
}

// cloudAddr is the address the cloud processes use.
func (t *chTarget) cloudAddr() string {
	if t.proxy != nil {
		return t.proxy.Addr()
	}
	return t.addr
}

// sharedServer is the common local server (scripts/clickhouse.sh), or the
// one CLICKHOUSE_ADDR names ("host:port" or
// "clickhouse://user:password@host:port/database"; the database part is
// ignored, every drill makes its own), with CLICKHOUSE_USER and
// CLICKHOUSE_PASSWORD.
func sharedServer() (chTarget, error) {
	t := chTarget{addr: "127.0.0.1:19000", user: "default"}
	if v := os.Getenv("CLICKHOUSE_USER"); v != "" {
		t.user = v
	}
	t.password = os.Getenv("CLICKHOUSE_PASSWORD")
	v := strings.TrimSpace(os.Getenv("CLICKHOUSE_ADDR"))
	switch {
	case v == "":
	case !strings.Contains(v, "://"):
		if _, port, err := net.SplitHostPort(v); err != nil || port == "" {
			return t, fmt.Errorf("cannot use CLICKHOUSE_ADDR=%q: want host:port or clickhouse://user:password@host:port/database", v)
		}
		t.addr = v
	default:
		u, err := url.Parse(v)
		if err != nil || (u.Scheme != "clickhouse" && u.Scheme != "tcp") || u.Port() == "" {
			return t, fmt.Errorf("cannot use CLICKHOUSE_ADDR=%q: want host:port or clickhouse://user:password@host:port/database", v)
		}
		t.addr = u.Host
		if u.User != nil {
			t.user = u.User.Username()
			if pw, ok := u.User.Password(); ok {
				t.password = pw
			}
		}
	}
	return t, nil
}

// openCH connects to the server; database "" is the server's default.
func openCH(ctx context.Context, t chTarget, database string) (driver.Conn, error) {
	conn, err := clickhouse.Open(&clickhouse.Options{
		Addr:        []string{t.addr},
		Auth:        clickhouse.Auth{Database: database, Username: t.user, Password: t.password},
		DialTimeout: 5 * time.Second,
		ReadTimeout: 60 * time.Second,
	})
	if err != nil {
		return nil, fmt.Errorf("cannot connect to ClickHouse at %q: %w", t.addr, err)
	}
	if err := conn.Ping(ctx); err != nil {
		conn.Close()
		return nil, fmt.Errorf("cannot reach ClickHouse at %q (scripts/clickhouse.sh start): %w", t.addr, err)
	}
	return conn, nil
}

// dropDatabase removes a drill's database.
func dropDatabase(ctx context.Context, t chTarget) error {
	return store.DropDatabase(ctx, store.Options{Addr: t.addr, User: t.user, Password: t.password}, t.database)
}

// chServer is a ClickHouse server the drill runs and restarts itself.
type chServer struct {
	dir        string
	tcp, http  string // host:port
	proc       *Process
	configPath string
}

// findCHServer returns the clickhouse-server program, as scripts/clickhouse.sh
// looks for it.
func findCHServer() (string, error) {
	if p, err := exec.LookPath("clickhouse-server"); err == nil {
		return p, nil
	}
	for _, p := range []string{"/usr/sbin/clickhouse-server", "/usr/bin/clickhouse-server"} {
		if st, err := os.Stat(p); err == nil && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", errors.New("cannot find clickhouse-server (apt-get install clickhouse-server)")
}

// newCHServer writes a server configuration under dir with free loopback
// ports; Start runs it.
func newCHServer(dir string) (*chServer, error) {
	bin, err := findCHServer()
	if err != nil {
		return nil, err
	}
	ports, err := freePorts(2)
	if err != nil {
		return nil, err
	}
	s := &chServer{dir: dir, tcp: ports[0], http: ports[1], configPath: filepath.Join(dir, "config.xml")}
	for _, d := range []string{"data", "tmp", "user_files", "format_schemas", "log"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return nil, fmt.Errorf("cannot create ClickHouse directory: %w", err)
		}
	}
	_, tcpPort, _ := net.SplitHostPort(s.tcp)
	_, httpPort, _ := net.SplitHostPort(s.http)
	cfg := fmt.Sprintf(chConfigXML, dir, dir, tcpPort, httpPort, dir, dir, dir, dir, dir)
	if err := os.WriteFile(s.configPath, []byte(cfg), 0o644); err != nil {
		return nil, fmt.Errorf("cannot write ClickHouse configuration: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "users.xml"), []byte(chUsersXML), 0o644); err != nil {
		return nil, fmt.Errorf("cannot write ClickHouse users: %w", err)
	}
	s.proc = newProcess("clickhouse-server", bin, []string{"--config-file=" + s.configPath}, childEnv(), filepath.Join(dir, "log", "stdout.log"))
	return s, nil
}

// Start runs the server and waits until its HTTP /ping answers.
func (s *chServer) Start(ctx context.Context) error {
	if err := s.proc.Start(); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	err := poll(ctx, 100*time.Millisecond, func() (bool, error) {
		select {
		case <-s.proc.Exited():
			return false, fmt.Errorf("exited: %v; see %s", s.proc.ExitErr(), filepath.Join(s.dir, "log"))
		default:
		}
		return s.answers(ctx), nil
	})
	if err != nil {
		return fmt.Errorf("cannot start the drill's ClickHouse server on %s: %w", s.tcp, err)
	}
	return nil
}

func (s *chServer) answers(ctx context.Context) bool {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+s.http+"/ping", nil)
	if err != nil {
		return false
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64))
	return resp.StatusCode == http.StatusOK && strings.TrimSpace(string(body)) == "Ok."
}

// Stop ends the server (SIGTERM; killed after a minute).
func (s *chServer) Stop() error { return s.proc.Stop(time.Minute) }

const chConfigXML = `<?xml version="1.0"?>
<!-- Generated by the drills for one drill's own server. -->
<yandex>
    <logger>
        <level>warning</level>
        <log>%s/log/clickhouse-server.log</log>
        <errorlog>%s/log/clickhouse-server.err.log</errorlog>
        <size>20M</size>
        <count>2</count>
    </logger>
    <listen_host>127.0.0.1</listen_host>
    <tcp_port>%s</tcp_port>
    <http_port>%s</http_port>
    <max_connections>256</max_connections>
    <keep_alive_timeout>3</keep_alive_timeout>
    <max_concurrent_queries>50</max_concurrent_queries>
    <uncompressed_cache_size>67108864</uncompressed_cache_size>
    <mark_cache_size>67108864</mark_cache_size>
    <path>%s/data/</path>
    <tmp_path>%s/tmp/</tmp_path>
    <user_files_path>%s/user_files/</user_files_path>
    <format_schema_path>%s/format_schemas/</format_schema_path>
    <users_config>%s/users.xml</users_config>
    <default_profile>default</default_profile>
    <default_database>default</default_database>
    <timezone>UTC</timezone>
    <mlock_executable>false</mlock_executable>
</yandex>
`

const chUsersXML = `<?xml version="1.0"?>
<yandex>
    <profiles>
        <default>
            <max_memory_usage>2000000000</max_memory_usage>
            <max_threads>2</max_threads>
            <background_pool_size>2</background_pool_size>
        </default>
    </profiles>
    <users>
        <default>
            <password></password>
            <networks><ip>127.0.0.1</ip></networks>
            <profile>default</profile>
            <quota>default</quota>
        </default>
    </users>
    <quotas><default><interval><duration>3600</duration><queries>0</queries><errors>0</errors>
        <result_rows>0</result_rows><read_rows>0</read_rows><execution_time>0</execution_time></interval></default></quotas>
</yandex>
`
