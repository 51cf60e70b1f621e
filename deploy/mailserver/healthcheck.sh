#!/bin/bash
# Health check of the test mail server image: IMAP, POP3 and SMTP submission accept.
for port in 31000 31002 31004; do
  exec 3<>"/dev/tcp/127.0.0.1/$port" || exit 1
  exec 3>&-
done
