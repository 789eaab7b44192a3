package web

import "net/http"

// dict holds the dashboard's labels in one language. Chinese is the
// default; ?lang=en switches to English.
type dict map[string]string

var dicts = map[string]dict{
	"zh": {
		"lang": "zh-CN", "title": "服务大厅评价看板", "report_title": "好差评月度通报",
		"l5": "非常满意", "l4": "满意", "l3": "基本满意", "l2": "不满意", "l1": "非常不满意",
		"good_rate": "好评率", "bad_rate": "差评率", "not_satisfied_rate": "不满意率", "score": "满意度得分",
		"online": "在线", "offline": "离线", "unknown": "未上报", "ticket": "当前号", "staff": "工作人员",
		"serving": "办理中", "done": "待评价", "idle": "空闲", "last_rated": "最近评价票号",
		"last": "最近评价", "today": "今日", "month": "本月", "rated": "有效评价", "pending": "待上传",
		"outbox_full": "设备缓存已满", "clock": "时钟未同步", "failed_verification": "记录未通过校验", "unverified": "未验证（无可信密钥）", "missing": "缺失记录",
		"no_ratings": "今日暂无评价", "counters": "窗口", "by_counter": "按窗口", "by_staff": "按工作人员",
		"dist_today": "今日评价分布", "dist_month": "本月评价分布", "trend": "本月每日好评率",
		"ranking": "本月不满意率排名", "rank": "名次", "last_place": "末位",
		"followups": "差评整改工单", "due": "整改期限", "days_left": "剩余天数", "overdue": "已超期",
		"note": "整改说明", "close": "办结", "no_followups": "暂无未办结工单", "token": "管理令牌",
		"token_save": "保存", "token_clear": "清除", "token_hint": "令牌只保存在本浏览器会话中",
		"refused": "操作被拒绝：需要有效的管理令牌", "failed": "操作失败", "closed_ok": "已办结",
		"audit": "审计", "gaps": "序号缺口", "no_gaps": "无缺口", "unmatched": "未匹配办件的评价",
		"rejected": "电子监察拒收的评价", "retry": "重新发送", "flagged": "重复/超时/无号评价",
		"duplicate_case": "同一办件重复评价", "parked": "被拒收并留存的消息",
		"conflicts": "同号异内容的副本（留作证据）", "displaced": "已被通过校验的记录取代",
		"press_repeat": "重复评价，不计入", "press_late": "超时评价，不计入", "press_no_ticket": "无号评价，不计入",
		"press_held": "未通过校验，不计入", "press_other": "待核对，暂不计入", "none": "无", "live": "实时", "reconnecting": "正在重连…",
		"report_link": "月度通报", "dashboard_link": "实时看板", "csv": "下载 CSV", "csv_reasons": "下载原因 CSV", "print": "打印",
		"total": "合计", "key": "名称", "hall": "大厅", "prev": "上月", "next": "下月",
		"device": "设备", "seq": "序号", "pressed_at": "评价时间", "counter": "窗口", "satisfaction": "评价",
		"days": "天", "generated": "生成时间", "language": "English", "lang_param": "en", "error": "错误",
		"src_staff": "请评价键", "src_http": "叫号系统·HTTP", "src_sql": "叫号系统·数据库", "src_mqtt": "叫号系统·MQTT",
		"src_queue": "叫号系统", "ambiguous": "待指派办件的评价", "assign": "指派", "assigned_ok": "已指派",
		"candidates": "候选办件", "reasons_title": "不满意原因分布", "reasons_month": "本月不满意原因分布", "reason": "不满意原因", "no_reason": "未选择原因",
	},
	"en": {
		"lang": "en", "title": "Service hall ratings", "report_title": "Monthly satisfaction report",
		"l5": "Very satisfied", "l4": "Satisfied", "l3": "Basic", "l2": "Dissatisfied", "l1": "Very dissatisfied",
		"good_rate": "Good rate", "bad_rate": "Bad rate", "not_satisfied_rate": "Not-satisfied rate", "score": "Score",
		"online": "online", "offline": "offline", "unknown": "no status", "ticket": "Ticket", "staff": "Staff",
		"serving": "serving", "done": "rating", "idle": "idle", "last_rated": "Last rated ticket",
		"last": "Last rating", "today": "Today", "month": "This month", "rated": "Rated", "pending": "Pending",
		"outbox_full": "device outbox full", "clock": "clock not synchronised", "failed_verification": "records failed verification", "unverified": "unverified (no trusted key)", "missing": "missing records",
		"no_ratings": "No ratings today", "counters": "Counters", "by_counter": "By counter", "by_staff": "By staff",
		"dist_today": "Today's ratings", "dist_month": "This month's ratings", "trend": "Daily good rate this month",
		"ranking": "Not-satisfied rate ranking this month", "rank": "Rank", "last_place": "last place",
		"followups": "Follow-ups of bad ratings", "due": "Due", "days_left": "Days left", "overdue": "overdue",
		"note": "Note", "close": "Close", "no_followups": "No open follow-ups", "token": "Manager token",
		"token_save": "Save", "token_clear": "Clear", "token_hint": "The token is kept in this browser session only",
		"refused": "Refused: a valid manager token is required", "failed": "Failed", "closed_ok": "Closed",
		"audit": "Audit", "gaps": "Seq gaps", "no_gaps": "no gaps", "unmatched": "Unmatched ratings",
		"rejected": "Evaluations rejected by e-supervision", "retry": "Send again", "flagged": "Repeat, late, no ticket",
		"duplicate_case": "Second ratings of a case", "parked": "Messages refused and parked",
		"conflicts": "Conflicting copies kept as evidence", "displaced": "replaced by the verified record",
		"press_repeat": "repeat press, not counted", "press_late": "late press, not counted", "press_no_ticket": "press without a ticket, not counted",
		"press_held": "failed verification, not counted", "press_other": "being checked, not counted yet", "none": "none", "live": "live", "reconnecting": "reconnecting…",
		"report_link": "Monthly report", "dashboard_link": "Live view", "csv": "Download CSV", "csv_reasons": "Download reasons CSV", "print": "Print",
		"total": "Total", "key": "Name", "hall": "Hall", "prev": "Previous", "next": "Next",
		"device": "Device", "seq": "Seq", "pressed_at": "Pressed", "counter": "Counter", "satisfaction": "Rating",
		"days": "days", "generated": "Generated", "language": "中文", "lang_param": "zh", "error": "Error",
		"src_staff": "staff key", "src_http": "queue · HTTP", "src_sql": "queue · database", "src_mqtt": "queue · MQTT",
		"src_queue": "queue", "ambiguous": "Ratings to assign to a case", "assign": "Assign", "assigned_ok": "Assigned",
		"candidates": "Candidate cases", "reasons_title": "Reasons given for bad ratings (不满意原因分布)", "reasons_month": "Reasons given this month", "reason": "Reason", "no_reason": "no reason given",
	},
}

// langOf returns the language a request asks for: "en" with ?lang=en,
// otherwise Chinese.
func langOf(r *http.Request) string {
	if r.URL.Query().Get("lang") == "en" {
		return "en"
	}
	return "zh"
}
