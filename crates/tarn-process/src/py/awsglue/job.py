"""Job.init and Job.commit: a commit records what bookmarked reads saw, for tarn to keep once
the job's writes are committed."""

from awsglue import _tarn


class Job:
    def __init__(self, glue_context):
        self._glue = glue_context
        self._name = None

    def init(self, job_name, args=None):
        self._name = job_name
        option = (args or {}).get("job_bookmark_option") or _tarn.bookmark_option()
        self._glue._bookmarks = option == "job-bookmark-enable"
        return self

    def commit(self):
        if self._glue._bookmarks:
            for ctx, files in self._glue._seen.items():
                _tarn.record({"kind": "bookmark", "ctx": ctx, "files": sorted(files)})
        self._glue._seen = {}
