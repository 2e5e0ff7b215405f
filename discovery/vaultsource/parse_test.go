package vaultsource

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/rotation-agent/rotation-agent/discovery"
	"github.com/rotation-agent/rotation-agent/events"
)

func TestParseTags(t *testing.T) {
	got, err := parseTags(map[string]string{
		"Service":            " Payments ,billing,,payments",
		"hosts":              "DB1",
		"configuration_item": "CI-42",
		"identity":           "",
		"rotate_fields":      "password,api_key",
		"rotation_overlap":   "30m",
		"rotation_action":    "verify",
		"rotation_round":     "3",
		"change_id":          "CHG-1",
		"deliver_to":         "/secret/apps/x/",
		"rotation_":          "ignored",
		"team":               "ignored",
	})
	if err != nil {
		t.Fatal(err)
	}
	want := tags{
		selectors: discovery.Selectors{discovery.KeyService: {"billing", "payments"}, discovery.KeyHost: {"db1"}, discovery.KeyCI: {"ci-42"}},
		fields:    []string{"password", "api_key"},
		options:   map[string]string{"overlap": "30m"},
		action:    events.ActionVerify,
		deliverTo: "secret/apps/x",
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got  %+v\nwant %+v", got, want)
	}
	if empty, _ := parseTags(map[string]string{"identity": " , ", "rotation_retire": "keep"}); empty.tagged() {
		t.Errorf("empty selector values count as tags: %+v", empty)
	}
	if _, err := parseTags(map[string]string{"service": "x", "rotation_action": "delete"}); err == nil || !strings.Contains(err.Error(), "not an action") {
		t.Errorf("bad action: %v", err)
	}
}

func TestConnectionHosts(t *testing.T) {
	for _, tc := range []struct {
		url  string
		want []string
	}{
		{"postgresql://{{username}}:{{password}}@127.0.0.1:5432/postgres?sslmode=disable", []string{"127.0.0.1"}},
		{"postgres://{{username}}:{{password}}@DB1.Example.com/app", []string{"db1.example.com"}},
		{"postgresql://u:p@w@db1:5432,db2:5433/app", []string{"db1", "db2"}},
		{"mongodb://{{username}}:{{password}}@m1:27017,m2:27017/admin?replicaSet=rs0&x=a@b", []string{"m1", "m2"}},
		{"{{username}}:{{password}}@tcp(mysql.internal:3306)/", []string{"mysql.internal"}},
		{"{{username}}/{{password}}@ora1:1521/XEPDB1", []string{"ora1"}},
		{"host=pg1,pg2 port=5432 user={{username}} password={{password}} dbname=app", []string{"pg1", "pg2"}},
		{"host=/var/run/postgresql dbname=app", nil},
		{"sqlserver://{{username}}:{{password}}@[2001:db8::1]:1433", []string{"2001:db8::1"}},
		{"", nil},
	} {
		if got := connectionHosts(tc.url); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("connectionHosts(%q) = %v, want %v", tc.url, got, tc.want)
		}
	}
}

func TestNormalizeSerial(t *testing.T) {
	for in, want := range map[string]string{"0A-1B": "0a:1b", "a:1b": "0a:1b", "a1b": "0a:1b", " 7f:00 ": "7f:00"} {
		got, err := normalizeSerial(in)
		if err != nil || got != want {
			t.Errorf("normalizeSerial(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "xyz", "::"} {
		if got, err := normalizeSerial(bad); err == nil {
			t.Errorf("normalizeSerial(%q) = %q, want an error", bad, got)
		}
	}
}

func TestScheduleNext(t *testing.T) {
	base := time.Date(2024, 3, 15, 10, 7, 30, 0, time.UTC) // a Friday
	for _, tc := range []struct {
		expr string
		want time.Time
	}{
		{"*/15 * * * *", time.Date(2024, 3, 15, 10, 15, 0, 0, time.UTC)},
		{"0 * * * *", time.Date(2024, 3, 15, 11, 0, 0, 0, time.UTC)},
		{"@hourly", time.Date(2024, 3, 15, 11, 0, 0, 0, time.UTC)},
		{"@daily", time.Date(2024, 3, 16, 0, 0, 0, 0, time.UTC)},
		{"30 2 * * mon-fri", time.Date(2024, 3, 18, 2, 30, 0, 0, time.UTC)},
		{"0 0 1 jan *", time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)},
		{"0 12 13 * 5", time.Date(2024, 3, 15, 12, 0, 0, 0, time.UTC)}, // day 13 OR Friday
		{"8,9 10 * * *", time.Date(2024, 3, 15, 10, 8, 0, 0, time.UTC)},
		{"0 0 29 2 *", time.Date(2028, 2, 29, 0, 0, 0, 0, time.UTC)},
		{"@every 90s", base.Add(90 * time.Second)},
	} {
		s, err := parseSchedule(tc.expr)
		if err != nil {
			t.Errorf("%q: %v", tc.expr, err)
			continue
		}
		if got := s.Next(base); !got.Equal(tc.want) {
			t.Errorf("%q: next after %s = %s, want %s", tc.expr, base, got, tc.want)
		}
	}
	for _, bad := range []string{"", "* * * *", "60 * * * *", "* * * 13 *", "5-1 * * * *", "*/0 * * * *", "0 0 30 2 *", "@sometimes", "@every 1ms", "x * * * *"} {
		if _, err := parseSchedule(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
