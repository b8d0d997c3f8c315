#pragma once
// Output names, identical to ssseg.label.inputs: [A-Za-z0-9._-] only, never hidden, and by one rule that no
// other input changes: a name as it is when already safe and no other source (frame of the folder) cleans to
// the same name ignoring case, else the cleaned name plus 8 hex digits of the sha256 of the source's absolute
// path (the frame's file name).

#include <map>
#include <set>
#include <string>
#include <vector>

namespace ssseg {

std::string safe_name(const std::string& text, bool allow_underscore = true);
/// The first 8 hex digits of the sha256 of `text` (its UTF-8 bytes).
std::string short_hash(const std::string& text);
/// The naming rule: `bases[i]` as it is, or cleaned plus short_hash(ids[i]); `taken` holds names in use already.
std::vector<std::string> unique_names(const std::vector<std::string>& bases, const std::vector<std::string>& ids,
                                      bool allow_underscore, const std::set<std::string>& taken = {});
/// Keys of sources named `bases` whose absolute paths are `wheres`: a source in `recorded` (absolute path ->
/// key, from a resumed job's manifests) keeps its key, the rest follow the rule (underscores become hyphens).
std::vector<std::string> assign_keys(const std::vector<std::string>& bases, const std::vector<std::string>& wheres,
                                     const std::map<std::string, std::string>& recorded = {});
/// Output stems of an image sequence from its files' stems and names.
std::vector<std::string> frame_names(const std::vector<std::string>& stems, const std::vector<std::string>& files);

}  // namespace ssseg
