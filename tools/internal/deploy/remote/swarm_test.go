package remote

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// A service's task template as `docker service inspect` shows it (Swarm's
// defaults filled in) and a task made from it (20.10 engine).
const (
	svcTemplate = `{"ContainerSpec":{"Image":"reg/python:bookworm","Labels":{"com.docker.stack.namespace":"stk"},"Args":["python3","-m","http.server","8000"],"Privileges":{"CredentialSpec":null,"SELinuxContext":null,"NoNewPrivileges":false},"StopGracePeriod":10000000000,"DNSConfig":{},"Isolation":"default"},"Resources":{},"RestartPolicy":{"Condition":"any","Delay":5000000000,"MaxAttempts":0},"Placement":{},"Networks":[{"Target":"w2x02tqr6bhvkbb0jy4f5q52z","Aliases":["a"]}],"ForceUpdate":0,"Runtime":"container"}`
	taskSpec    = `{"ContainerSpec":{"Image":"reg/python:bookworm","Labels":{"com.docker.stack.namespace":"stk"},"Args":["python3","-m","http.server","8000"],"Privileges":{"CredentialSpec":null,"SELinuxContext":null,"NoNewPrivileges":false},"Isolation":"default"},"Resources":{},"Placement":{},"Networks":[{"Target":"w2x02tqr6bhvkbb0jy4f5q52z","Aliases":["a"]}],"ForceUpdate":0}`
)

func TestSameSpec(t *testing.T) {
	if !sameSpec(json.RawMessage(taskSpec), json.RawMessage(svcTemplate)) {
		t.Error("a task made from the template is not recognised as up to date")
	}
	changes := map[string]string{
		"image":         `"Image":"reg/python:bookworm"` + "|" + `"Image":"reg/python:trixie"`,
		"args":          `"8000"]` + "|" + `"8001"]`,
		"grace period":  `"StopGracePeriod":10000000000` + "|" + `"StopGracePeriod":5000000000`,
		"restart":       `"Condition":"any"` + "|" + `"Condition":"on-failure"`,
		"env added":     `"Isolation":"default"},"Resources"` + "|" + `"Isolation":"default","Env":["A=1"]},"Resources"`,
		"force update":  `"ForceUpdate":0,"Runtime"` + "|" + `"ForceUpdate":1,"Runtime"`,
		"network alias": `"Aliases":["a"]}],"ForceUpdate":0,"Runtime"` + "|" + `"Aliases":["b"]}],"ForceUpdate":0,"Runtime"`,
	}
	for name, c := range changes {
		from, to, _ := strings.Cut(c, "|")
		changed := strings.Replace(svcTemplate, from, to, 1)
		if changed == svcTemplate {
			t.Fatalf("%s: %q not in the template", name, from)
		}
		if sameSpec(json.RawMessage(taskSpec), json.RawMessage(changed)) {
			t.Errorf("%s changed in the service, yet the old task counts as up to date", name)
		}
	}
}

func TestParseStack(t *testing.T) {
	out := "@@slipway-services\n" + `[{"ID":"s1","Version":{"Index":42},"Spec":{"Name":"p_web","TaskTemplate":` + svcTemplate + `,"Mode":{"Replicated":{"Replicas":2}}},
"UpdateStatus":{"State":"rollback_completed","StartedAt":"2026-01-02T03:04:05.5Z","Message":"rollback completed"}},
{"ID":"s2","Version":{"Index":7},"Spec":{"Name":"p_agent","TaskTemplate":{},"Mode":{"Global":{}}}}]` + "\n@@slipway-tasks\n" +
		`[{"ID":"t1","ServiceID":"s1","Slot":1,"CreatedAt":"2026-01-02T03:04:06Z","Spec":` + taskSpec + `,"DesiredState":"running","Status":{"State":"running","ContainerStatus":{"ContainerID":"c1","ExitCode":0}}},
{"ID":"t2","ServiceID":"s1","Slot":2,"CreatedAt":"2026-01-02T03:04:07Z","Spec":{"ContainerSpec":{"Image":"other"}},"DesiredState":"shutdown","Status":{"State":"failed","Err":"task: non-zero exit (3)","ContainerStatus":{"ContainerID":"c2","ExitCode":3}}}]` + "\n"
	svcs, err := parseStack(out)
	if err != nil {
		t.Fatal(err)
	}
	if len(svcs) != 2 || svcs[1].Name != "p_web" || svcs[0].Name != "p_agent" {
		t.Fatalf("services %+v", svcs)
	}
	web := svcs[1]
	if web.Replicas != 2 || web.Version != 42 || web.Image != "reg/python:bookworm" || web.UpdateState != "rollback_completed" ||
		!web.UpdateStarted.Equal(time.Date(2026, 1, 2, 3, 4, 5, 5e8, time.UTC)) {
		t.Errorf("web %+v", web)
	}
	if len(web.Tasks) != 2 || web.Tasks[0].ID != "t2" || web.Tasks[0].UpToDate || web.Tasks[0].ExitCode != 3 || !web.Tasks[1].UpToDate || web.Tasks[1].ContainerID != "c1" {
		t.Errorf("tasks %+v", web.Tasks)
	}
	if svcs[0].Replicas != -1 {
		t.Errorf("a global service has replicas %d, want -1", svcs[0].Replicas)
	}
	if _, err := parseStack("no marker"); err == nil {
		t.Error("output without the services marker was accepted")
	}
}
