"""Run an experiment's command line with mongomock standing in for localhost:27017.

    python tests/mongo_driver.py DUMP.json my_exp.py ARGS...

With MONGO_LOST_BEFORE_FINAL_SAVES=1 the server "goes away" before the runs' final saves.
With MONGO_STATE=FILE the server keeps its data between commands, as a real one does: every
collection is loaded from FILE at start (when it exists) and saved back to it at exit.

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


def load_state(path):
    from bson import json_util

    if not path or not os.path.exists(path):
        return
    with open(path) as f:
        state = json_util.loads(f.read())
    client = pymongo.MongoClient("localhost", 27017)
    for db_name, collections in state.items():
        for name, docs in collections.items():
            if docs:
                client[db_name][name].insert_many(docs)


def save_state(path):
    from bson import json_util

    client = pymongo.MongoClient("localhost", 27017)
    state = {db: {name: list(client[db][name].find()) for name in client[db].list_collection_names()}
             for db in client.list_database_names()}
    with open(path, "w") as f:
        f.write(json_util.dumps(state))


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
            "indexes": sorted(db.runs.index_information()),
        }
    with open(path, "w") as f:
        json.dump(out, f, default=str)


dump_path, script, args = sys.argv[1], sys.argv[2], sys.argv[3:]
load_state(os.environ.get("MONGO_STATE"))
atexit.register(dump, dump_path)
if os.environ.get("MONGO_STATE"):
    atexit.register(save_state, os.environ["MONGO_STATE"])
sys.argv = [script] + args
runpy.run_path(script, run_name="__main__")
