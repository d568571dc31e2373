"""aws/cluster.yaml, checked offline: Ray's own schema, then what Ray's check misses."""

import configparser
import copy
import os
import re

import pytest
import ray
import yaml
from conftest import REPO
from packaging.requirements import Requirement
from ray.autoscaler._private.util import prepare_config, validate_config

CLUSTER = os.path.join(REPO, "aws", "cluster.yaml")


def load():
    with open(CLUSTER) as f:
        return yaml.safe_load(f)


def test_ray_schema_accepts_the_cluster_file():
    validate_config(prepare_config(load()))


def problems(config):
    """What `ray up` would only find out on AWS: the values a user must fill in."""
    found = []
    if not re.fullmatch(r"[a-z]{2}-[a-z]+-\d", config["provider"].get("region") or ""):
        found.append("region")
    auth = config.get("auth") or {}
    if not auth.get("ssh_user") or not str(auth.get("ssh_private_key", "")).endswith(".pem"):
        found.append("auth")
    for name, node in config["available_node_types"].items():
        node_config = node["node_config"]
        if not re.fullmatch(r"ami-[0-9a-f]{8,17}", str(node_config.get("ImageId", ""))):
            found.append(f"{name}.ImageId")
        if not node_config.get("KeyName"):
            found.append(f"{name}.KeyName")
    return found


def test_what_rays_check_misses_is_filled_in():
    config = load()
    assert problems(config) == []
    assert config["idle_timeout_minutes"] <= 30  # idle workers stop costing money


def test_only_ssh_is_open_to_the_world():
    rules = load()["provider"]["security_group"]["IpPermissions"]
    world = [r for r in rules if any(ip["CidrIp"] == "0.0.0.0/0" for ip in r.get("IpRanges", []))]
    assert [(r["FromPort"], r["ToPort"]) for r in world] == [(22, 22)]
    commands = "\n".join(load()["head_setup_commands"])
    assert "-p 127.0.0.1:27017:27017" in commands and "-p 127.0.0.1:9000:9000" in commands


def test_setup_installs_sacred_ray_and_the_ray_version_of_setup_cfg():
    config = load()
    setup = "\n".join(config["setup_commands"])
    assert "pip install -e ~/sacred-ray" in setup
    assert config["file_mounts"]["~/sacred-ray"] == "."
    pinned = re.search(r'"ray\[[^\]]*\]==([0-9.]+)"', setup).group(1)
    parser = configparser.ConfigParser()
    parser.read(os.path.join(REPO, "setup.cfg"))
    requires = [Requirement(line) for line in parser["options"]["install_requires"].split("\n") if line.strip()]
    (ray_req,) = [r for r in requires if r.name == "ray"]
    assert ray_req.specifier.contains(pinned)
    assert pinned == ray.__version__  # the driver's Ray and the cluster's must be the same
    for command in config["head_start_ray_commands"] + config["worker_start_ray_commands"]:
        assert "~/venv/bin/ray" in command


@pytest.mark.parametrize("breakage,problem", [("no_region", "region"), ("bad_ami", "head.ImageId"),
                                              ("no_key", "head.KeyName"), ("no_auth", "auth")])
def test_the_extra_checks_catch_what_rays_check_lets_through(breakage, problem):
    config = copy.deepcopy(load())
    node = config["available_node_types"]["head"]["node_config"]
    if breakage == "no_region":
        config["provider"]["region"] = ""
    elif breakage == "bad_ami":
        node["ImageId"] = "FILL-IN"
    elif breakage == "no_key":
        node["KeyName"] = ""
    else:
        config["auth"].pop("ssh_private_key")
    validate_config(prepare_config(copy.deepcopy(config)))  # Ray's own check lets it through
    assert problems(config) == [problem]


def test_workers_reach_the_checkpoint_bucket_with_only_what_checkpoints_need():
    """The workers carry the instance profile aws/README.md makes; its policy grants exactly what
    sacred_ray's checkpoints do in the bucket (list, read, write, delete when pruning) and no more."""
    import json

    config = load()
    for name, node in config["available_node_types"].items():
        if name != config["head_node_type"]:  # the head keeps Ray's own role (it launches the workers)
            assert node["node_config"]["IamInstanceProfile"] == {"Name": "sacred-ray-checkpoints"}
    with open(os.path.join(REPO, "aws", "checkpoints-policy.json")) as f:
        policy = json.load(f)
    granted = {(a, s["Resource"]) for s in policy["Statement"] for a in s["Action"] if s["Effect"] == "Allow"}
    bucket = "arn:aws:s3:::my-sacred-ray-checkpoints"
    assert granted == {("s3:ListBucket", bucket), ("s3:GetBucketLocation", bucket), ("s3:GetObject", bucket + "/*"),
                       ("s3:PutObject", bucket + "/*"), ("s3:DeleteObject", bucket + "/*")}
    with open(os.path.join(REPO, "aws", "README.md")) as f:
        readme = f.read()
    for needed in ("aws/ec2-trust.json", "aws/checkpoints-policy.json", "aws/pass-role-policy.json",
                   "--instance-profile-name sacred-ray-checkpoints", "storage: s3://my-sacred-ray-checkpoints"):
        assert needed in readme
    with open(CLUSTER) as f:
        assert "storage: s3://my-sacred-ray-checkpoints" in f.read()
