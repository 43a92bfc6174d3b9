# What the local Slurm clusters share, sourced by jobs/slurm/local-cluster.sh (one node) and
# jobs/slurm/local-nodes-slurm.sh (one slurmd per namespace node). Needs $dir (the cluster's
# state folder) and die().

# slurm.conf settings both clusters use: root, munge, no cgroups, no accounting, Open MPI's PMIx
# (Debian's Open MPI has no PMI-1/2 client), nodes that return to service by themselves.
slurm_common_settings() {
  cat << EOF
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
StateSaveLocation=$dir/state
SlurmctldPidFile=$dir/slurmctld.pid
SlurmctldLogFile=$dir/log/slurmctld.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SlurmdParameters=config_overrides
MpiDefault=pmix
ReturnToService=2
MailProg=/bin/true
SlurmdTimeout=300
InactiveLimit=0
KillWait=10
MinJobAge=600
EOF
}

# make_fake_gpus N: N character devices for gres "gpu" ($dir/fake-gpu/gpu0..N-1, links to
# /dev/null: Slurm sets CUDA_VISIBLE_DEVICES only for character devices).
make_fake_gpus() {
  local i
  mkdir -p "$dir/fake-gpu"
  for ((i = 0; i < $1; i++)); do ln -sfn /dev/null "$dir/fake-gpu/gpu$i"; done
}

# munged, started here when it does not answer (no systemd: /run/munge made by hand, munged run as
# user munge); "$dir/munged-started-here" tells `stop` to end it.
start_munge() {
  munge -n 2> /dev/null | unmunge > /dev/null 2>&1 && return 0
  install -d -o munge -g munge -m 0755 /run/munge
  install -d -o munge -g munge -m 0700 /var/log/munge /etc/munge
  install -d -o munge -g munge -m 0711 /var/lib/munge
  [ -s /etc/munge/munge.key ] || runuser -u munge -- mungekey --create --keyfile=/etc/munge/munge.key
  chown munge:munge /etc/munge/munge.key
  chmod 0400 /etc/munge/munge.key
  rm -f /run/munge/munge.socket.2 /run/munge/munge.socket.2.lock
  runuser -u munge -- /usr/sbin/munged
  : > "$dir/munged-started-here"
  local i
  for i in $(seq 50); do munge -n 2> /dev/null | unmunge > /dev/null 2>&1 && return 0; sleep 0.1; done
  die "munged does not answer"
}
