package sshx

func (e *HostKeyError) message() string { return "host key not trusted" }
