#!/usr/bin/env bash
# Run inside the CPU image's build (bentofile-cpu.yaml's docker.setup_script), after the Python
# packages are installed. BentoML's Containerfile template installs build-essential, git and gnupg2
# for packages that compile from source; every package here is a wheel, so they go again, with all
# they pulled in. `--opt squash` (deploy/image/build.sh) then keeps them out of the image.
set -eux
apt-get purge -y build-essential git gnupg2
# Not Recommends/Suggests-important: python3-pip (in the Debian-built base) recommends a compiler.
apt-get autoremove -y --purge -o APT::AutoRemove::RecommendsImportant=false -o APT::AutoRemove::SuggestsImportant=false
rm -rf /var/lib/apt/lists/* /var/cache/apt/* /root/.cache
