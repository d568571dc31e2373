"""Run an experiment's command line with mongomock standing in for localhost:27017.

    python tests/mongo_driver.py DUMP.json my_exp.py ARGS...

With MONGO_LOST_BEFORE_FINAL_SAVES=1 the server "goes away" before the runs' final saves.

Sacred's own MongoObserver (from -m localhost:27017:DB) writes through pymongo's API
into mongomock; at exit the runs, metrics and GridFS files are dumped to DUMP.json
so the test can read what Omniboard would.
"""

import atexit
import json
import os
import runpy
import sys

import mongomock
import mongomock.gridfs
import pymongo

mongomock.gridfs.enable_gridfs_integration()
patcher = mongomock.patch(servers=(("localhost", 27017),))
patcher.start()

if os.environ.get("MONGO_LOST_BEFORE_FINAL_SAVES"):
    # The server goes away mid-sweep: every run's final save (an upsert) fails.
    import pymongo.errors

    update_one = mongomock.collection.Collection.update_one

    def lost(self, filter, update, upsert=False, *args, **kwargs):
        if upsert and self.name == "runs":
            raise pymongo.errors.ConnectionFailure("connection lost (simulated)")
        return update_one(self, filter, update, upsert, *args, **kwargs)

    mongomock.collection.Collection.update_one = lost


def dump(path):
    client = pymongo.MongoClient("localhost", 27017)
    out = {}
    for db_name in client.list_database_names():
        db = client[db_name]
        out[db_name] = {
            "runs": list(db.runs.find()),
            "metrics": list(db.metrics.find()),
            "files": [
                {"filename": f["filename"], "data": db.fs.chunks.find_one({"files_id": f["_id"]})["data"].decode("utf-8", "replace")}
                for f in db["fs.files"].find()
            ],
        }
    with open(path, "w") as f:
        json.dump(out, f, default=str)


dump_path, script, args = sys.argv[1], sys.argv[2], sys.argv[3:]
atexit.register(dump, dump_path)
sys.argv = [script] + args
runpy.run_path(script, run_name="__main__")
