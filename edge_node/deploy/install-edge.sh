#!/usr/bin/env bash
# Install (or upgrade) the edge node on a Debian site box, as root:
#   sudo ./install-edge.sh /path/to/site-1.env
# The env file is what `cctv node add site-1` printed (CCTV_NODE_ID,
# CCTV_MQTT_URL, ...); see .env.example for every setting.
set -euo pipefail

env_file=${1:?usage: install-edge.sh NODE.env}
source_dir=$(cd "$(dirname "$0")/../.." && pwd)
[ "$(id -u)" = 0 ] || { echo "run as root" >&2; exit 1; }
[ -r "$env_file" ] || { echo "cannot read $env_file" >&2; exit 1; }

apt-get install -y -qq --no-install-recommends python3 python3-venv >/dev/null
id cctv >/dev/null 2>&1 || useradd --system --home-dir /var/lib/cctv --shell /usr/sbin/nologin cctv
# USB cameras
getent group video >/dev/null && usermod -aG video cctv

install -d -m 0755 /opt/cctv
python3 -m venv /opt/cctv/venv
/opt/cctv/venv/bin/pip install --quiet --upgrade pip
/opt/cctv/venv/bin/pip install --quiet "$source_dir"
install -d -m 0755 /opt/cctv/docs
install -m 0644 "$source_dir/docs/"*.md /opt/cctv/docs/ 2>/dev/null || true

install -d -m 0750 -o root -g cctv /etc/cctv
install -m 0640 -o root -g cctv "$env_file" /etc/cctv/edge.env
install -d -m 0750 -o cctv -g cctv /var/lib/cctv
install -m 0644 "$source_dir/edge_node/deploy/cctv-edge.service" /etc/systemd/system/cctv-edge.service
# The recorder asks for 4 MiB socket buffers so a camera's datagrams can queue
# while its thread sleeps between batches (bench/recording.py: 0.85 of ffmpeg's
# CPU with them); Debian caps them at 208 KiB unless this is raised.
printf 'net.core.rmem_max = 4194304\n' > /etc/sysctl.d/60-cctv-edge.conf
sysctl -q -p /etc/sysctl.d/60-cctv-edge.conf

systemctl daemon-reload
systemctl enable cctv-edge.service
systemctl restart cctv-edge.service
echo "cctv-edge installed: systemctl status cctv-edge; journalctl -u cctv-edge -f"
