#!/bin/sh
# Writes the password file from the environment, then runs Mosquitto. Passwords never sit in
# git or in the image; a user whose variable is unset cannot log in.
set -eu
passwd=/mosquitto/data/passwd
umask 077
: > "$passwd"
add() {
    if [ -n "${2:-}" ]; then mosquitto_passwd -b "$passwd" "$1" "$2"; fi
}
add broadcaster "${MQTT_BROADCASTER_PASSWORD:-}"
add desk "${MQTT_DESK_PASSWORD:-}"
add signage "${MQTT_SIGNAGE_PASSWORD:-}"
chown mosquitto:mosquitto "$passwd" 2>/dev/null || true
exec mosquitto -c /mosquitto/config/mosquitto.conf
